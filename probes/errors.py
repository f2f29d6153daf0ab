"""Errors a user can cause: each becomes one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations

import difflib


class ProbesError(Exception):
    """A user mistake or an unusable input, with a message that says what to do."""


class ModelLoadError(ProbesError):
    """A model name or checkpoint directory that cannot be loaded."""


class SpecError(ProbesError):
    """A layer spec, hook name or position that does not fit the model."""


def closest(name: str, choices, n: int = 3) -> str:
    """'; did you mean a, b?' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""
