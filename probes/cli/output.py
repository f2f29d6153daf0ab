"""The one output path: text or --json on stdout, logs and warnings on stderr, plain-text tables."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any


class StdoutFailed(Exception):
    """A write to stdout failed (a full disk, a closed stdout): the output is lost, so the run failed."""


class ReaderGone(Exception):
    """stdout is a pipe whose reader has gone (`probes info | head -1`): no failure, nothing more to show.

    Not an OSError, so click's own broken-pipe handling (exit 1) never sees it.
    """


class CheckedStdout:
    """sys.stdout while `main()` runs: a failed write or flush raises StdoutFailed, one line in `main()`.

    A broken pipe raises ReaderGone: the reader has gone (`probes info | head -1`), which is no
    failure. A stdout closed before the start (Python's sys.stdout is then None) fails at the first write.
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        if self.stream is None:
            raise StdoutFailed("stdout is closed")
        return self._do(self.stream.write, text)

    def flush(self) -> None:
        if self.stream is not None:
            self._do(self.stream.flush)

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def __getattr__(self, name):
        return getattr(self.stream, name)

    @staticmethod
    def _do(call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise ReaderGone from None
        except (OSError, ValueError) as e:  # ValueError: a stream closed inside this process
            raise StdoutFailed(getattr(e, "strerror", None) or str(e)) from None


def log(message: str) -> None:
    """Progress and notes: stderr, so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    return value


def show_warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning for the CLI: one 'warning:' line on stderr, no source line."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def emit(data: dict, as_json: bool, render: Callable[[dict], str]) -> None:
    """Print `data` as JSON (alone on stdout) or as the human text `render(data)`."""
    if as_json:
        print(json.dumps(_clean(data), ensure_ascii=not _writes_unicode(sys.stdout), indent=1))
    else:
        print(render(data))


def _writes_unicode(stream) -> bool:
    """Whether `stream` encodes every character (UTF-8, -16, -32). Otherwise (PYTHONIOENCODING=ascii, a
    Latin-1 terminal) JSON is written with `\\u` escapes: a character the stream would replace or escape
    itself (`\\xe9`) would make the output invalid JSON."""
    import codecs

    encoding = getattr(stream, "encoding", None)
    if encoding is None:  # a stream of str, not bytes (io.StringIO): it holds any character
        return True
    try:
        return codecs.lookup(encoding).name.startswith("utf")
    except LookupError:
        return False


def table(rows: list[list[Any]], header: list[str] | None = None, align: str | None = None) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[_fmt(c) for c in r] for r in ([header] if header else []) + rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    kinds = align or "".join(
        "r" if isinstance(c, (int, float)) else "l" for c in (rows[0] if rows else header)
    )
    lines = []
    for j, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if kinds[i] == "r" else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
            ).rstrip()
        )
        if header and j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    from probes.numbers import show_number

    if isinstance(c, float):
        return show_number(c, ".4g" if math.isnan(c) or abs(c) < 1e4 else ",.0f", na="-")
    if c is None:
        return "-"
    return str(c)
