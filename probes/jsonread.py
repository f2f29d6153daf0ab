"""Reading JSON that came from outside this process: one reader, with limits, whose errors name the file.

Every JSON probes reads (a checkpoint's config.json and safetensors headers, a tuned lens's config, a
report's manifest, a capture's index and file metadata, a JSONL dataset's lines) comes through
`read_json` (a file) or `parse_json` (text already in hand). Python's own parser has no limits: a
document nested a hundred thousand deep raises `RecursionError` (or crashes the interpreter where the
recursion limit was raised), and a number of 5,000 digits `ValueError`; a file of many gigabytes is read
whole. Here each is one line, of the caller's error kind, naming where the JSON came from.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from probes.errors import ProbesError

MAX_DEPTH = 64  # nesting levels; probes' own files use five at most
MAX_NUMBER = 100  # characters in one number: more than any float or count probes writes needs
MAX_BYTES = 256 << 20  # a file's size; a caller that expects more (or less) says so

# A string, with its escapes; removed before counting brackets and digits, which may appear in text.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PAIR = re.compile(r"\[\]|\{\}")
_LONG_NUMBER = re.compile(rf"[-+0-9.eE]{{{MAX_NUMBER + 1},}}")


def read_json(
    path, *, max_bytes: int = MAX_BYTES, error: type[ProbesError] = ProbesError, where: str | None = None
) -> Any:
    """The JSON value in file `path`, read within the limits above; anything else raises `error`, one
    line that names the file (or `where`, when the caller names it otherwise)."""
    path = Path(path)
    where = where or str(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{where}: a folder where a JSON file belongs")
        if not stat.S_ISREG(mode):  # a FIFO would block for good, /dev/zero never end
            raise error(f"{where}: not a regular file (a pipe or a device?); give a JSON file")
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)  # never more than the limit, whatever stat said
    except OSError as e:
        raise error(f"{where}: cannot read it ({e.strerror or e})") from None
    if len(raw) > max_bytes:
        raise error(f"{where}: more than {max_bytes:,} bytes of JSON; probes reads at most that")
    return parse_json(raw, where, error=error)


def parse_json(text: str | bytes, where: str, *, error: type[ProbesError] = ProbesError) -> Any:
    """The JSON value of `text` (bytes are read as UTF-8), within the nesting and number limits above;
    anything else raises `error`, one line that starts with `where`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{where}: not UTF-8 text (byte {e.start})") from None
    bare = _STRING.sub('""', text)  # (strings hold any characters: brackets and digits there are text)
    if not _depth_within(bare, MAX_DEPTH):
        raise error(f"{where}: JSON nested more than {MAX_DEPTH} levels deep; probes reads no deeper")
    if _LONG_NUMBER.search(bare):
        raise error(f"{where}: a JSON number longer than {MAX_NUMBER} characters")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # what the checks above let through: still one line
        raise error(f"{where}: not valid JSON ({str(e)[:120]})") from None


def _depth_within(bare: str, limit: int) -> bool:
    """Whether the brackets of `bare` (JSON without its strings) nest at most `limit` deep.

    Each pass removes the innermost empty pairs, one level, at the regex engine's speed; a balanced
    text is empty after as many passes as it is deep. One that stops shrinking is not balanced: the
    parser says what is wrong with it.
    """
    marks = _NOT_BRACKET.sub("", bare)
    for _ in range(limit):
        if not marks:
            return True
        marks, n = _PAIR.subn("", marks)
        if not n:
            return True
    return not marks or not _PAIR.search(marks)
