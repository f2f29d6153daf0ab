"""placeholder"""

def capture() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
