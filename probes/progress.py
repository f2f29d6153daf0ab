"""Progress: what a long study reports as it runs (tasks with a total, steps done, notes), drawn by the CLI.

    def study(model, data, *, progress=None):
        p = progress_of(progress)                 # None, a message callback, or a Progress
        with p.task("lens", total=len(data), unit="texts") as task:
            for batch in ...:
                task.advance(len(batch))

Studies only report; the CLI decides how it looks: a rich bar with rate and ETA on stderr
(`bar_progress`), nothing under `--json` (`Progress()`). The module imports neither torch nor rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class Task:
    """One counted stretch of work; `advance(n)` after each n units."""

    def advance(self, n: float = 1) -> None:
        pass

    def __enter__(self) -> Task:
        return self

    def __exit__(self, *exc) -> None:
        pass


class Progress:
    """Silent progress: the base and the default. Subclasses draw."""

    def task(self, label: str, total: float | None = None, unit: str = "items") -> Task:
        return Task()

    def note(self, message: str) -> None:
        pass


class MessageProgress(Progress):
    """Notes go to a callback (`print`-like); tasks are silent. What a plain callable becomes."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say

    def note(self, message: str) -> None:
        self.say(message)


def progress_of(progress) -> Progress:
    """`progress` as a Progress: None shows a bar where a person watches (stderr is a terminal, or a
    notebook runs the code) and nothing elsewhere (a pipe, a log, a test); True always a bar (rich's on
    a terminal, a line updated in place in a notebook); False nothing; a callable receives the notes;
    a Progress is used as it is."""
    if progress is None and not watched():
        return Progress()
    if progress is None or progress is True:
        return NotebookProgress() if in_notebook() else BarProgress()
    if progress is False:
        return Progress()
    if isinstance(progress, Progress):
        return progress
    if callable(progress):
        return MessageProgress(progress)
    from probes.errors import ProbesError

    raise ProbesError(
        f"progress must be True, False, None (a bar where someone watches), a callable or a "
        f"probes.progress.Progress, not {type(progress).__name__}"
    )


def watched() -> bool:
    """Whether a person is likely to watch this process's progress: stderr is a terminal, or a Jupyter
    kernel runs it (rich draws its bars in the notebook's output cell)."""
    stream = sys.stderr
    try:
        if stream is not None and stream.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    return in_notebook()


def in_notebook() -> bool:
    """Whether a Jupyter kernel runs this code (its output goes to a notebook cell)."""
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell is not None else None
    return type(ip).__name__ == "ZMQInteractiveShell"


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class _LineTask(Task):
    """One line in the notebook cell, redrawn in place (at most 4 times a second, and once at the end)."""

    def __init__(self, label: str, total, unit: str):
        self.label, self.total, self.unit, self.done = label, total, unit, 0

    def __enter__(self) -> _LineTask:
        import time

        from IPython.display import display

        self.start = self.drawn = time.monotonic()
        self.handle = display({"text/plain": self.line()}, raw=True, display_id=True)
        return self

    def line(self) -> str:
        import time

        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 and self.done else 0.0
        count = f"{self.done:,g}/{self.total:,g}" if self.total else f"{self.done:,g}"
        out = f"{self.label}  {count} {self.unit}  {rate:,.1f} {self.unit}/s  {_clock(elapsed)} elapsed"
        if self.total and rate and self.done < self.total:
            out += f"  ETA {_clock((self.total - self.done) / rate)}"
        return out

    def advance(self, n: float = 1) -> None:
        import time

        self.done += n
        if time.monotonic() - self.drawn >= 0.25:
            self.drawn = time.monotonic()
            self.handle.update({"text/plain": self.line()}, raw=True)

    def __exit__(self, *exc) -> None:
        self.handle.update({"text/plain": self.line()}, raw=True)


class NotebookProgress(Progress):
    """In a Jupyter notebook: a task is one text line in the cell (count, rate, elapsed, ETA) that updates
    in place through IPython's display, so it needs no widget library; notes are printed lines."""

    def task(self, label: str, total: float | None = None, unit: str = "items") -> Task:
        return _LineTask(label, total, unit)

    def note(self, message: str) -> None:
        print(message, flush=True)


class _RichTask(Task):
    def __init__(self, bar, label: str, total, unit: str):
        self.bar, self.label, self.total, self.unit = bar, label, total, unit

    def __enter__(self) -> _RichTask:
        self.bar.start()
        self.id = self.bar.add_task(self.label, total=self.total, unit=self.unit)
        return self

    def advance(self, n: float = 1) -> None:
        self.bar.advance(self.id, n)

    def __exit__(self, kind, *exc) -> None:
        if kind is not None and kind is not KeyboardInterrupt:
            # A failed run's half-drawn bar would sit above its one error line: clear it.
            self.bar.live.transient = True
        self.bar.stop()
        self.bar.remove_task(self.id)


class BarProgress(Progress):
    """A rich bar on stderr per task (label, bar, done/total unit, rate, elapsed and ETA); notes as lines."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)

    def task(self, label: str, total: float | None = None, unit: str = "items") -> Task:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                if not speed and task.completed and task.elapsed:  # too quick for rich's own estimate
                    speed = task.completed / task.elapsed
                return Text(
                    f"{speed:,.1f} {task.fields['unit']}/s" if speed else f"- {task.fields['unit']}/s"
                )

        bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        return _RichTask(bar, label, total, unit)

    def note(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def bar_progress(quiet: bool = False) -> Progress:
    """The CLI's progress: bars and notes on stderr, or (`quiet`, as under `--json`) notes alone, as every
    other log line: stdout holds the JSON, and no bar redraws stderr."""
    if quiet:
        return MessageProgress(lambda message: print(message, file=sys.stderr, flush=True))
    return BarProgress()
