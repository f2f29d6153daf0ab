"""Token display: the one formatter for every token a user reads in a table, report or figure.

    show_token(" the")      -> '␣the'
    show_token("\n\n")      -> '\\n\\n'
    show_token("\x07")      -> '\\x07'

A space is drawn as '␣' (GPT-2 tokens usually start with one, and a bare space is invisible),
newlines and tabs as their escapes, and anything else no font draws (control characters, lone
surrogates) as a Python escape. JSON output keeps the raw token strings: it is data, not display.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}


def show_token(token: str, limit: int | None = None, *, plot: bool = False) -> str:
    """`token` made visible; cut to `limit` characters with '…'; `plot=True` also escapes matplotlib's '$'."""
    shown = "".join(_NAMED.get(c) or (c if c.isprintable() else repr(c)[1:-1]) for c in token)
    if not shown:
        shown = "''"  # the empty string (a token that decodes to nothing) still needs a mark
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown.replace("$", r"\$") if plot else shown


def check_top(top, *, minimum: int = 1) -> int:
    """`top`, how many tokens to list (per lens row, sampling setting or word), if it is an integer >= `minimum`."""
    from probes.errors import SpecError

    if isinstance(top, bool) or not isinstance(top, int) or top < minimum:
        raise SpecError(f"top (how many tokens to list) must be an integer >= {minimum}, got {top!r}")
    return top
