"""Safe output: check paths before computing, write atomically so an interrupt leaves old or new."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from probes.errors import ProbesError

FIGURE_FORMATS = ("png", "pdf", "svg")


def check_output(path, force: bool = False) -> Path:
    """Fail early (before any computation) unless `path` can be written as a new or (force) replaced file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ProbesError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise ProbesError(f"{path} already exists; pass --force (force=True) to overwrite it")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ProbesError(f"cannot write {path}: {parent} {what}")
    _check_writable(parent)
    return path


def _check_writable(folder: Path) -> None:
    try:
        # os.access says yes to root on a read-only mount; creating a file is the real test.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ProbesError(f"cannot write to directory {folder}: {e.strerror or e}") from None


def check_dir(path, flag: str | None = None) -> Path:
    """Fail early unless `path` is (or can be created as) a folder we can write files into; `flag` names the option."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ProbesError(f"{flag + ' ' if flag else ''}{str(path)!r} is a file; give a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ProbesError(f"cannot create {path}: {probe} is not a folder")
    _check_writable(probe)
    return path


def check_figure_path(path, *, force: bool = True, flag: str = "--plot") -> Path:
    """A figure file name (`flag` names the option in the message) that can be written, checked before any work."""
    p = check_output(path, force=force)
    if p.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise ProbesError(f"{flag} {str(p)!r}: use a file name ending in .png, .pdf or .svg")
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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it an ordinary file's mode
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
