"""placeholder"""

def report() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
