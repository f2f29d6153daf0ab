"""placeholder"""

def lens() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
