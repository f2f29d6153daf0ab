"""Errors a user can cause: each becomes one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations

import difflib


class ProbesError(Exception):
    """A user mistake or an unusable input, with a message that says what to do."""


class ModelLoadError(ProbesError):
    """A model name or checkpoint directory that cannot be loaded."""


class SpecError(ProbesError):
    """A layer spec, hook name or position that does not fit the model."""


# How the CLI names a parameter that a library message names as `name=value`: its flag, where the
# flag is not simply --name-with-dashes (or --no-name for False).
_FLAGS = {
    "shard_bytes": "--shard-size",
    "lens": "--tuned",
    "greedy=False": "--sample",
    "evaluate=False": "--no-eval",
}


def as_flags(message: str) -> str:
    """A library message as the CLI shows it: each parameter named `name=value` becomes `--name value`.

    Library messages speak in parameter names (`pass force=True to overwrite it`), since a Python
    caller has no flags; the CLI, whose flags are those parameters, shows the flags instead
    (`pass --force to overwrite it`). `name=True` is the flag alone, `name=False` its `--no-` form.
    """
    import re

    def flag(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        if value in ("True", "False"):
            special = _FLAGS.get(f"{name}={value}")
            if special:
                return special
            dashed = name.replace("_", "-")
            return f"--{dashed}" if value == "True" else f"--no-{dashed}"
        return _FLAGS.get(name, "--" + name.replace("_", "-")) + " "

    return re.sub(r"(?<![\w.\-])([a-z][a-z_]*)=(True\b|False\b|(?=[^\s=)]))", flag, message)


def closest(name: str, choices, n: int = 3) -> str:
    """'; did you mean a, b?' for the closest choices, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""
