"""One HTML document per view: the data as JSON, the package's own JS and CSS inlined; nothing fetched.

The file works from `file://`, offline, and inside a notebook output cell (`notebook_frame`: the page in
an iframe's `srcdoc`, so its styles and script cannot touch the notebook's).
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from probes.errors import ProbesError

HTML_SUFFIXES = (".html", ".htm")

# Nothing may be fetched: only the inline script and styles run, whatever a token string holds.
_CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"

_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<noscript><p>This view needs JavaScript; the same numbers are in the result's JSON.</p></noscript>
<script type="application/json" id="probes-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""


def asset(name: str) -> str:
    """The text of a file shipped in this package (`lens.js`, `common.js`, `view.css`)."""
    return resources.files("probes.views").joinpath(name).read_text(encoding="utf-8")


def embed_json(data) -> str:
    """`data` as JSON that is safe inside a <script> element: no '<' at all, so no '</script>' or '<!--'.

    Inside JSON a '<' can only be in a string, where its escape '\\u003c' reads back the same.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def document(title: str, data: dict, script: str) -> str:
    """A whole HTML page: `data` embedded for the package script `script` (a file name, run after
    common.js, the helpers every view shares), with view.css."""
    code = asset("common.js") + "\n" + asset(script)
    return _DOCUMENT.format(
        csp=_CSP, title=html.escape(title), css=asset("view.css"), data=embed_json(data), script=code
    )


def notebook_frame(page: str, height: int, *, src: str | None = None, title: str = "probes view") -> str:
    """`page` in an iframe for a notebook cell: self-contained, sandboxed (scripts only), `height` px tall.

    `src` (a file name beside the page that holds the frame, as in the report's folder) shows that file
    instead of holding `page` in the frame's `srcdoc`; the frame is the same either way."""
    # A report's frames load as they scroll into view; a notebook's one frame at once.
    where = (
        f'src="{html.escape(src, quote=True)}" loading="lazy"'
        if src
        else f'srcdoc="{html.escape(page, quote=True)}"'
    )
    style = f"width:100%;height:{int(height)}px;border:1px solid #ddd"
    return f'<iframe {where} sandbox="allow-scripts" style="{style}" title="{html.escape(title)}"></iframe>'


def check_html_path(path, *, force: bool = False, param: str = "html") -> Path:
    """An HTML file name (`param` names the parameter in the message) that can be written, checked before any
    work."""
    from probes.io import check_output

    p = check_output(path, force=force)
    if p.suffix.lower() not in HTML_SUFFIXES:
        raise ProbesError(f"{param}={str(p)!r}: use a file name ending in .html")
    return p


def write_page(path, page: str, *, force: bool = False) -> Path:
    """Write `page` to `path` (checked with `check_html_path` before the work) atomically, never overwriting
    without `force`; a disk that refuses it is one ProbesError line."""
    from probes.io import write_text

    try:
        return write_text(path, page, force=force)
    except OSError as e:
        raise ProbesError(f"cannot write the view to {path}: {e.strerror or e}") from None
