"""Safe output: check paths before computing, write atomically so an interrupt leaves old or new."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from probes.errors import ProbesError

FIGURE_FORMATS = ("png", "pdf", "svg")


def check_output(path, *, force: bool = False, kind: str = "file") -> Path:
    """Fail early (before any computation) if `path` cannot or should not be written."""
    p = Path(path).expanduser()
    if p.is_dir() and kind == "file":
        raise ProbesError(f"{str(p)!r} is a directory; give a file name")
    if p.exists() and kind == "file" and not force:
        raise ProbesError(f"{str(p)!r} already exists; pass --force to overwrite it")
    parent = p.parent if kind == "file" else p
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ProbesError(f"cannot write to {str(parent)!r}: the folder is not writable")
    return p


def check_figure_path(path, *, force: bool = True) -> Path:
    p = check_output(path, force=force)
    if p.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise ProbesError(f"figure file {str(p)!r}: use a .png, .pdf or .svg name")
    return p


@contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on any error it is removed."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_figure(fig, path, dpi: int = 130) -> Path:
    """Write a matplotlib Figure atomically; the format follows the extension."""
    p = Path(path)
    fmt = p.suffix.lstrip(".").lower() or "png"
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return p


def write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)
