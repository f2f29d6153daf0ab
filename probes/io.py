"""Safe output: one rule for every file a command writes.

Check the path before computing; write under a temporary name beside it; then claim the final
name atomically. Without `force` an existing file (or a dangling symlink) is never replaced, also
one that appears while the work runs; with `force` the new file replaces the old in one rename.
An interrupt (Ctrl-C, SIGTERM) leaves the old file or the new one, never half of one, and no
temporary file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from probes.errors import ProbesError

FIGURE_FORMATS = ("png", "pdf", "svg")


# The largest file offset: no file, shard or capture can hold more bytes than this (8 EiB).
MAX_SIZE = (1 << 63) - 1


def parse_size(text, name: str | None = None) -> int:
    """Bytes from an int or text such as '500M', '4G', '1.5GiB' (powers of 1024), from 1 to MAX_SIZE.

    `name` is the parameter the size was given as, so the error says which (`shard_bytes='inf' ...`).
    """
    import math

    said = f"{name}={text!r}" if name else f"size {text!r}"
    hint = "give bytes or a number with K, M, G or T, e.g. 4G"
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().upper().removesuffix("IB").removesuffix("B")
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
        try:
            number = float(s[:-1] if scale > 1 else s)
        except ValueError:
            raise ProbesError(f"{said}: {hint}") from None
        if math.isnan(number):
            raise ProbesError(f"{said} is not a number; {hint}")
        value = number * scale  # a float until it is known to fit: int(inf) would raise
    if value < 1:
        raise ProbesError(f"{said} must be positive (1 byte or more)")
    if not value <= MAX_SIZE:  # inf, 1e400 (inf as a float) and sizes no file can have
        raise ProbesError(
            f"{said} is out of range: a size must be finite and at most 8 EiB ({MAX_SIZE} bytes)"
        )
    return int(value)


def user_path(path) -> Path:
    """`path` as a user means it: `~` expanded; a NUL byte (which no file name can hold) is an error."""
    text = os.fspath(path)
    if "\x00" in text:
        raise ProbesError(f"{text!r}: a path cannot contain a NUL byte")
    return Path(text).expanduser()


def check_links(path: Path, param: str | None = None, *, itself: bool = True) -> None:
    """Raise if `path` (unless not `itself`) or a folder above it is a symlink that leads nowhere: a loop,
    or a link to something missing. Writing there fails only after the work (in `mkdir`, or as
    'File exists'), so it is checked first."""
    for q in (path, *path.parents) if itself else path.parents:
        if os.path.islink(q):
            try:
                os.stat(q)
            except OSError as e:
                said = f"{param}={str(path)!r}" if param else f"cannot write {str(path)!r}"
                why = (
                    "a symlink loop"
                    if e.errno == errno.ELOOP
                    else f"a symlink to {os.readlink(q)!r}, which is missing"
                )
                raise ProbesError(f"{said}: {str(q)!r} is {why}") from None


def check_regular(path: Path, what: str) -> None:
    """Raise unless `path` is a regular file (or missing: the reader says so): a FIFO or a pipe blocks or
    gives its bytes once, a device such as /dev/zero never ends, and probes reads its inputs whole or
    twice. `what` names the input in the error."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise ProbesError(f"{what} {str(path)!r} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise ProbesError(
            f"{what} {str(path)!r} is not a regular file (a pipe, a FIFO or a device); probes reads it whole "
            "(a dataset twice: to check it, then to use it): save it to a file first"
        )


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()  # a dangling symlink still holds the name


def check_output(path, force: bool = False) -> Path:
    """The expanded `path`, if it can be written as a new or (force) replaced file; checked before any
    work."""
    path = user_path(path)
    check_links(path, itself=False)  # a dangling link as the file itself holds the name: see _taken
    if path.is_dir():
        raise ProbesError(f"{str(path)!r} is a directory; give a file name")
    if _taken(path) and not force:
        raise ProbesError(f"{str(path)!r} already exists; pass force=True to overwrite it")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ProbesError(f"cannot write {str(path)!r}: {str(parent)!r} {what}")
    _check_writable(parent)
    return path


def _check_writable(folder: Path) -> None:
    try:
        # os.access says yes to root on a read-only mount; creating a file is the real test.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ProbesError(f"cannot write to directory {str(folder)!r}: {e.strerror or e}") from None


def check_dir(path, param: str | None = None) -> Path:
    """Fail early unless `path` is (or can be created as) a folder we can write files into; `param` names
    the parameter (the CLI shows its flag; see `probes.errors.as_flags`)."""
    path = user_path(path)
    check_links(path, param)
    if path.exists() and not path.is_dir():
        raise ProbesError(f"{param + '=' if param else ''}{str(path)!r} is a file; give a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ProbesError(f"cannot create {str(path)!r}: {str(probe)!r} is not a folder")
    _check_writable(probe)
    return path


def check_figure_path(path, *, force: bool = False, param: str = "plot") -> Path:
    """A figure file name (`param` names the parameter in the message) that can be written, checked before
    any work."""
    p = check_output(path, force=force)
    if p.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise ProbesError(f"{param}={str(p)!r}: use a file name ending in .png, .pdf or .svg")
    return p


@contextmanager
def atomic_path(path, force: bool = False) -> Iterator[str]:
    """Yield a temporary path beside `path`; on success it becomes `path`, on any error it is removed.

    Without `force` the final name is claimed with a hard link, which fails if anything holds the
    name by then (another run, a file the user made meanwhile): that is an error, never an overwrite.
    Ctrl-C and SIGTERM are deferred (see `_Deferred`) while the temporary file is made, renamed or
    removed, and act at once while the caller writes it.
    """
    p = user_path(path)
    with _Deferred() as deferred:
        tmp = None
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
            os.close(fd)
            with deferred.lifted():
                yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it an ordinary file's mode
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            if force:
                os.replace(tmp, p)
            else:
                _claim(tmp, p)
        except Exception as e:
            failed = write_failure(e, p)
            if failed is None:
                raise
            raise failed from None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)


class WriteFailed(ProbesError):
    """A file could not be written (a full disk, a file size limit, a lost mount): what was there is kept."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def write_failure(error: BaseException, path: Path) -> WriteFailed | None:
    """`error`, raised while writing `path`, as one line, if it is a failed write (an OSError, or
    safetensors' error wrapping one); None for anything else."""
    import re

    code = None
    if isinstance(error, WriteFailed):  # a file inside a staged folder: said again of the folder
        return WriteFailed(f"{error.reason} writing {str(path)!r}; nothing was replaced", error.reason)
    if isinstance(error, OSError):
        code = error.errno
    elif type(error).__name__ == "SafetensorError" and "I/O error" in str(error):
        found = re.search(r"os error (\d+)", str(error))
        code = int(found.group(1)) if found else None
    else:
        return None
    reason = os.strerror(code).lower() if code else (str(error).splitlines() or ["an I/O error"])[0]
    if code == errno.EFBIG:
        reason += " (the file size limit, ulimit -f)"
    reason = reason[:1].lower() + reason[1:]
    return WriteFailed(f"{reason} writing {str(path)!r}; nothing was replaced", reason)


@contextmanager
def owned_folder(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder` (made if missing) for this process while the body writes there; a second writer fails.

    The claim is an exclusive, non-blocking `flock` on the folder itself: two runs started on the same
    folder at the same instant cannot both get it, and the kernel drops it when the process ends, however
    it ends, so a killed run never leaves a stale lock. `what` names the writer in the error. Where the
    system has no flock (Windows), nothing is held.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ProbesError(
                f"{str(folder)!r} is being written by another {what} right now; wait for it to finish, "
                "or use another folder"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def staged_folder(dest: Path, place: Callable[[Path], None]) -> Iterator[Path]:
    """Yield a new empty folder beside `dest` to fill; then `place(folder)` moves it into place.

    On any error, an interrupt included, the folder is removed. Interrupts are deferred while it is
    made, placed or removed (see `_Deferred`), so `place` runs whole: its renames cannot be cut in two.
    """
    import shutil

    with _Deferred() as deferred:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        except OSError as e:
            raise write_failure(e, dest) from None
        try:
            with deferred.lifted():
                yield tmp
            place(tmp)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            failed = write_failure(e, dest) if isinstance(e, Exception) else None
            if failed is None:
                raise
            raise failed from None


def swap_folder(tmp: Path, dest: Path, *, force: bool, check_ours: Callable[[Path], None], what: str) -> None:
    """Make the staged folder `tmp` the folder `dest`: claim a new or empty name in one rename; with `force`,
    swap out an old folder of ours (`check_ours(dest)` raises unless it is one).

    The old folder is renamed aside first and deleted only once the new one is in place; when the
    second rename fails, the old one goes back. Run it as `staged_folder`'s `place`, with interrupts
    deferred, so one cannot land between the renames: `dest` always holds one whole `what`.
    """
    import shutil

    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp made it 0700; give it an ordinary folder's mode
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise ProbesError(f"--out {str(dest)!r} filled up while the {what} ran; nothing was replaced")
        check_ours(dest)  # again, just before the swap: someone may have added files meanwhile
        aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
        os.replace(dest, aside / dest.name)
        try:
            os.replace(tmp, dest)
        except BaseException:
            os.replace(aside / dest.name, dest)
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    try:
        os.rename(tmp, dest)  # onto a missing or empty folder only; a folder that filled up meanwhile refuses
    except OSError as e:
        raise ProbesError(
            f"--out {str(dest)!r} filled up while the {what} ran; nothing was replaced ({e.strerror})"
        ) from None


class _Deferred:
    """Ctrl-C and SIGTERM wait while inside; one that came is raised on leaving, as KeyboardInterrupt.

    The interrupt is raised where Python checks for signals, which can be any line; so the code
    that makes a temporary file and the `try` that removes it must not be split by one. Blocking
    the signals in the kernel is not enough: Python runs its handler after they are unblocked, at
    the next line, which may still be outside the `try`. Here the handlers themselves are swapped
    for ones that only take note, from the first line that matters to the last, and the caller's
    own handlers (SIG_DFL, SIG_IGN or a function) are put back exactly on leaving. Only the main
    thread can do that; elsewhere signals are not delivered to Python code anyway.
    """

    _depth = 0
    _pending: list = []
    _saved: dict = {}

    def __enter__(self) -> _Deferred:
        self._hold()
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    @contextmanager
    def lifted(self):
        """Let interrupts act at once for a while (the caller's own work); deferred again after."""
        self._release()
        try:
            yield
        finally:
            self._hold()

    @classmethod
    def _hold(cls) -> None:
        import signal

        if not _main_thread():
            return
        if cls._depth == 0:
            # A handler installed outside Python (by a program embedding it) reads as None, and
            # signal.signal cannot put None back: such a signal is left alone, not left swapped.
            held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
            cls._saved = _swap_handlers(dict.fromkeys(held, cls._note))
        cls._depth += 1

    @classmethod
    def _release(cls) -> None:
        import signal

        if not _main_thread() or cls._depth == 0:
            return
        cls._depth -= 1
        if cls._depth:
            return
        _swap_handlers(cls._saved)
        if cls._pending:
            signum = cls._pending[-1]
            cls._pending.clear()
            handler = signal.getsignal(signum)
            if callable(handler):
                handler(
                    signum, None
                )  # Python's own for Ctrl-C raises KeyboardInterrupt; the CLI's for SIGTERM too
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)  # what would have happened without us: the process ends

    @classmethod
    def _note(cls, signum, frame) -> None:
        cls._pending.append(signum)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _swap_handlers(handlers: dict) -> dict:
    """Install `handlers` (signal -> handler) and return the ones they replace; the kernel holds
    these signals meanwhile, so none lands between two of the swaps."""
    import signal

    before = (
        signal.pthread_sigmask(signal.SIG_BLOCK, set(handlers))
        if hasattr(signal, "pthread_sigmask")
        else None
    )
    try:
        return {s: signal.signal(s, h) for s, h in handlers.items()}
    finally:
        if before is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _claim(tmp: str, p: Path) -> None:
    """Give `tmp` the name `p` only if nothing holds it: one atomic step."""
    try:
        os.link(tmp, p)
    except FileExistsError:
        raise ProbesError(
            f"{str(p)!r} appeared while this ran; nothing was overwritten (pass force=True to replace it)"
        ) from None
    except OSError:  # a file system without hard links: reserve the name exclusively, then move in
        try:
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise ProbesError(
                f"{str(p)!r} appeared while this ran; nothing was overwritten (pass force=True to replace it)"
            ) from None
        os.replace(tmp, p)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(fig, path, dpi: int = 130, force: bool = False) -> Path:
    """Write a matplotlib Figure atomically under the output rule above; the format follows the extension."""
    p = user_path(path)
    fmt = p.suffix.lstrip(".").lower() or "png"
    with atomic_path(p, force) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return p


def write_text(path, text: str, force: bool = False) -> Path:
    with atomic_path(path, force) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return user_path(path)
