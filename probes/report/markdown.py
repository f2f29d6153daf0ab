"""Markdown pieces for the report (tables, quotes, tokens, numbers, figures) and its HTML rendering.

    md_table(["setting", "entropy (nats)"], [["T=0.8", 3.2]])   # -> ['| setting | ... |', '|---|---|', ...]
    tok(" the")                                                # -> '`␣the`'
    fmt(float("nan"), ".2f")                                   # -> 'n/a'
    to_html("**bold**")                                        # a whole HTML page, rendered by markdown-it-py

Every token shown goes through `probes.tokens.show_token`, the one token formatter, as inline code.
Every number goes through `fmt` (`probes.numbers.show_number`), so a metric a short run cannot have (NaN,
None) reads "n/a" and nothing reads '-0.000'.
"""

from __future__ import annotations

import html
import numbers
import re

from probes.numbers import NA, missing, show_number

# Characters that start Markdown syntax inside a line; user text (prompts, words) is escaped so a
# prompt like "a_b_c" or "<br>" shows as typed. A backslash may escape any ASCII punctuation. Pipes
# matter only in tables, where md_table escapes them (escaping twice would show a backslash).
_SPECIAL = re.compile(r"([\\`*_\[\]<>&])")


def fmt(value, spec: str = "") -> str:
    """`value` formatted with `spec` (as in an f-string), or 'n/a' when it is None or NaN
    (`probes.numbers`)."""
    return show_number(value, spec)


def escape(text: str) -> str:
    """Plain text made safe inside Markdown prose: syntax characters are backslash-escaped."""
    return _SPECIAL.sub(r"\\\1", str(text))


def code(text: str) -> str:
    """`text` as one inline code span, whatever backticks it holds.

    Markdown has no escapes inside code spans: the fence is one backtick longer than the longest
    run inside, and padded with a space where the text starts or ends with a backtick.
    """
    text = str(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    # CommonMark strips one space from each end when both ends have one; pad so those survive too.
    pad = (
        " " if text[:1] == "`" or text[-1:] == "`" or (text[:1] == text[-1:] == " " and text.strip()) else ""
    )
    return f"{ticks}{pad}{text}{pad}{ticks}"


def tok(token: str) -> str:
    """A token as users see it everywhere (`show_token`: '␣the', '\\n'), as inline code."""
    from probes.tokens import show_token

    return code(show_token(token))


def toks(tokens, sep: str = " ") -> str:
    return sep.join(tok(t) for t in tokens)


def _cell(value) -> str:
    if missing(value):
        return NA
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        text = show_number(value, ".4g")
    else:
        text = str(value)
    # A pipe ends a cell even inside a code span; GFM tables take `\|` there too.
    return text.replace("\n", " ").replace("|", "\\|")


def md_table(header: list[str], rows: list[list]) -> list[str]:
    """A pipe table. Floats show 4 significant digits, None and NaN 'n/a'; strings are Markdown."""
    return ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in rows
    ]


def fence(text: str, info: str = "") -> list[str]:
    """A fenced code block holding `text` verbatim: the fence is longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [ticks + info, text, ticks]


def quote(text: str, limit: int = 600) -> list[str]:
    """A generated text as a code block, cut after `limit` characters."""
    return fence(text if len(text) <= limit else text[:limit] + " …", "text")


def figure(name: str, caption: str) -> list[str]:
    """The lines that show figure file `name` (saved beside report.md by the builder) with its caption.

    `caption` is Markdown the report writes (a code span such as `wte` renders as code, in the HTML too:
    escaping it would show the backticks); anything taken from a user goes in through `escape` or `code`.
    """
    return [f"![{caption}]({name})", "", f"*{caption}*", ""]


def figure_names(lines: list[str]) -> list[str]:
    """The figure files that `figure` lines in `lines` show, in order."""
    return [m.group(1) for line in lines if (m := re.fullmatch(r"!\[.*\]\(([^()\s]+)\)", line))]


_PAGE = """<!doctype html>
<meta charset=utf-8>
<title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: auto; padding: 0 1em; }}
img {{ max-width: 100%; }}
p.png {{ font-size: 0.85em; margin-top: 0.2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #999; padding: 3px 6px; }}
pre {{ background: #f4f4f4; padding: 0.5em; overflow-x: auto; white-space: pre-wrap; }}
</style>
<body>
{body}</body>
"""


def to_html(markdown_text: str, title: str = "probes report", views: dict[str, str] | None = None) -> str:
    """A standalone HTML page of `markdown_text` (CommonMark plus tables; raw HTML is shown, not run).

    `views` maps a figure's file name to the HTML that replaces it on the page (an interactive view's
    frame, from `probes.views`); the PNG stays linked under it, and the Markdown keeps the PNG.
    """
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    for name, frame in (views or {}).items():
        img = re.compile(rf'<p><img src="{re.escape(html.escape(name))}" alt="[^"]*" /></p>')
        link = f'<p class="png"><a href="{html.escape(name)}">the same as a PNG figure</a></p>'
        body, n = img.subn(lambda _, shown=frame + "\n" + link: shown, body)
        assert n == 1, (name, n)  # each view replaces exactly its figure
    return _PAGE.format(title=html.escape(title), body=body)
