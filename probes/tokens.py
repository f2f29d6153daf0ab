"""Token display: the one formatter for every token a user reads in a table, report or figure.

    show_token(" the")              -> '␣the'
    show_token("\n\n")              -> '\\n\\n'
    show_token("\x07")              -> '\\x07'
    show_token("覚", plot=True)      -> '\\u899a'   (the figure font has no glyph for it)

A space is drawn as '␣' (GPT-2 tokens usually start with one, and a bare space is invisible),
newlines and tabs as their escapes, and anything else no font draws (control characters, lone
surrogates) as a Python escape. In figures (`plot=True`, and `plot_text` for prompts and titles)
a character the figure font cannot draw is an escape too, so a CJK or emoji token reads `\\u899a`
rather than an empty box with a "Glyph missing" warning; tables and the report, read in fonts
that have those characters, show them as they are. JSON output keeps the raw token strings: it
is data, not display.
"""

from __future__ import annotations

import functools

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}


def show_token(token: str, limit: int | None = None, *, plot: bool = False) -> str:
    """`token` made visible; cut to `limit` characters with '…'; `plot=True` also escapes what the figure font
    lacks and matplotlib's '$'."""
    drawable = figure_charmap() if plot else None
    pieces = [_NAMED.get(c) or _visible(c, drawable) for c in token]
    shown = "".join(pieces) or "''"  # the empty string (a token that decodes to nothing) still needs a mark
    if limit is not None and len(shown) > limit:
        # Cut between characters, never inside an escape ('\\u899a' whole or not at all).
        kept, width = [], 0
        for piece in pieces:
            if width + len(piece) > limit - 1:
                break
            kept.append(piece)
            width += len(piece)
        shown = "".join(kept) + "…"
    return shown.replace("$", r"\$") if plot else shown


def model_label(name: str, limit: int = 48) -> str:
    """A model's name for a title: a path by its last part (a folder's or GGUF file's name), a hub name as
    it is, and anything longer than `limit` characters cut at the front ("…" + its end)."""
    text = str(name)
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text:
        text = text.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or text
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def plot_text(text: str) -> str:
    """Free text (a prompt, a model name) for a figure: spaces kept, other invisible or undrawable characters
    escaped, '$' escaped."""
    drawable = figure_charmap()
    return "".join(c if c == " " else _visible(c, drawable) for c in str(text)).replace("$", r"\$")


def _visible(c: str, drawable: frozenset[int] | None) -> str:
    if not c.isprintable():
        return repr(c)[1:-1]
    if drawable is not None and ord(c) not in drawable:
        return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
    return c


def figure_charmap() -> frozenset[int]:
    """The code points matplotlib's default font draws in both regular and bold (cells of a lens are bold)."""
    from matplotlib import font_manager

    paths = (
        font_manager.findfont(font_manager.FontProperties()),
        font_manager.findfont(font_manager.FontProperties(weight="bold")),
    )
    return _charmap(paths)


@functools.lru_cache(maxsize=4)
def _charmap(paths: tuple[str, ...]) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    maps = [set(FT2Font(p).get_charmap()) for p in paths]
    return frozenset(set.intersection(*maps))


def check_top(top, *, minimum: int = 1) -> int:
    """`top`, how many tokens to list (per lens row, sampling setting or word), if it is an integer >=
    `minimum`."""
    from probes.errors import SpecError

    if isinstance(top, bool) or not isinstance(top, int) or top < minimum:
        raise SpecError(f"top (how many tokens to list) must be an integer >= {minimum}, got {top!r}")
    return top
