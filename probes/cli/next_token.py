"""placeholder"""

def next_token() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
