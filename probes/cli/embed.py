"""placeholder"""

def embed() -> None:
    """Not written yet."""
    raise SystemExit("not implemented")
