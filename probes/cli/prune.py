"""placeholder"""

def prune() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
