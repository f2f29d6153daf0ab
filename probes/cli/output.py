"""The one output path (text or --json on stdout) and the one error path (a line on stderr)."""

from __future__ import annotations

import functools
import json
import math
import sys
import warnings
from typing import Any, Callable

import typer

from probes.errors import ProbesError


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


def emit(data: dict, as_json: bool, render: Callable[[dict], str]) -> None:
    """Print `data` as JSON (alone on stdout) or as the human text `render(data)`."""
    if as_json:
        print(json.dumps(_clean(data), ensure_ascii=False, indent=1))
    else:
        print(render(data))


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def handle_errors(fn: Callable) -> Callable:
    """Turn a ProbesError into one line on stderr and exit code 2; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            return fn(*args, **kwargs)
        except ProbesError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            print("interrupted; nothing more was written", file=sys.stderr, flush=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper


def table(rows: list[list[Any]], header: list[str] | None = None, align: str | None = None) -> str:
    """A plain-text table; numbers right-aligned."""
    cells = [[_fmt(c) for c in r] for r in ([header] if header else []) + rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    kinds = align or "".join("r" if isinstance(c, (int, float)) else "l" for c in (rows[0] if rows else header))
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if kinds[i] == "r" else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
        if header and j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        if math.isnan(c):
            return "-"
        return f"{c:.4g}" if abs(c) < 1e4 else f"{c:,.0f}"
    if c is None:
        return "-"
    return str(c)


def show_token(s: str, limit: int = 16) -> str:
    """A token string made visible: repr-style escapes, long ones shortened."""
    shown = repr(s)[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
