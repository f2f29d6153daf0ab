"""Sharded activations: a dataset capture's folder (index.json + safetensors shards) read lazily,
memory-mapped.

    acts = probes.load_activations("states/")  # nothing is read but the index
    acts[3].stack("resid_post")                 # (layer, pos, d_model) of text 3, as one-prompt capture gives
    for x in acts.rows("blocks.2.hook_resid_post", batch_size=4096):
        x["blocks.2.hook_resid_post"]           # (rows, d_model), with x["text"], x["position"], x["tokens"]

The folder holds `index.json` and `shard-00000.safetensors`, ... Each shard stores, per hook name,
a (rows, ...) tensor: one row per token position of the windows it covers, in dataset order
(`text` (rows,) says which text, `position` (rows,) the position in its window, 0 being BOS when
the capture added one; `tokens` (rows,) the ids). A text longer than the context is several
windows, each starting again with BOS; a text's rows are those of its windows, concatenated.
A streamed dataset's shards are `shard-SSSSS-JJJJJ.safetensors`, planned per data source; their `text`
column numbers texts within the source, and the reader adds the index's `text_base`
(`probes.studies.capture.sources`).
The index lists only finished shards: what a reader sees is always whole. The module's checks
import no torch, so the CLI runs them before loading a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from probes.core.layers import format_layers
from probes.errors import ProbesError
from probes.io import check_dir
from probes.jsonread import parse_json, read_json
from probes.numbers import count
from probes.studies.capture.format import CaptureMeta, hook_order
from probes.studies.capture.sources import place

INDEX = "index.json"
FORMAT = "probes.activation_shards/1"
# Under torchrun, each rank but 0 records the shards it finished in its own ledger; rank 0 lists them in
# the index at the end (or, after an interruption, when the capture resumes with any number of ranks).
LEDGER = "index.rank-{rank}.json"
LEDGER_GLOB = "index.rank-*.json"
LEDGER_FORMAT = "probes.activation_shards.ledger/1"
ROW_KEYS = ("tokens", "text", "position")  # per-row bookkeeping each shard holds beside the hook tensors
STORE_DTYPES = ("float32", "float16", "bfloat16")
# A shard is assembled in memory (its parts, then joined, then serialised: about three copies at the
# peak), so this bounds a capture's memory whatever the dataset's size.
SHARD_BYTES = 128 << 20
INDEX_BYTES = 1 << 30  # an index lists every text and window: some 60 bytes each, so millions of texts
# A streamed dataset's shards are named by data source and number in it (shard-SSSSS-JJJJJ): each rank plans
# and writes the shards of its own sources without seeing the others' (probes.studies.capture.dataset).
_SHARD = re.compile(r"shard-\d{5}(-\d{5})?\.safetensors")
_SOURCE_SHARD = re.compile(r"shard-\d{5}-\d{5}\.safetensors")
_LEDGER = re.compile(r"index\.rank-\d+\.json")
_TEMPORARY = re.compile(r"\.(shard-\d{5}(-\d{5})?\.safetensors|index\.json|index\.rank-\d+\.json)\..*\.tmp")


def shard_name(k: int, source: int | None = None) -> str:
    """Shard k's file name; with `source`, the k-th shard of that data source of a stream."""
    if source is not None:
        return f"shard-{source:05d}-{k:05d}.safetensors"
    return f"shard-{k:05d}.safetensors"


def check_store_dtype(name: str | None) -> str | None:
    """`name` if it is a storage dtype (None stays None: the model's own)."""
    if name is not None and name not in STORE_DTYPES:
        raise ProbesError(f"storage dtype {name!r}: choose one of {', '.join(STORE_DTYPES)}")
    return name


def check_capture_dir(
    out, settings: dict, force: bool = False, *, streamed: bool | None = None
) -> tuple[Path, dict | None]:
    """(folder, its index or None) for a capture into `out` with `settings`; refuses what would mix two
    captures.

    A folder with an index made with other `settings` (only the keys given are compared, so the CLI
    can check what it knows before loading), or holding files but no index, is an error unless
    `force`; so is a capture of a stream resumed without streaming, or the reverse (`streamed`: whether
    this capture streams; None: not known). Nothing is changed.
    """
    folder = check_dir(out, "out")
    if (folder / INDEX).is_dir():
        raise ProbesError(
            f"{folder / INDEX} is a folder, not a capture index; probes removes no folder it did not "
            "write, even with force=True"
        )
    if force:
        try:
            return folder, read_index(folder) if folder.is_dir() else None
        except ProbesError:  # a damaged index: force starts over
            return folder, None
    index = read_index(folder) if folder.is_dir() else None
    if index is None:
        if folder.is_dir() and any(not temporary(p.name) for p in folder.iterdir()):
            raise ProbesError(
                f"out={str(folder)!r} holds files but no {INDEX}; give a new or empty folder, "
                "or pass force=True to write there anyway"
            )
        return folder, None
    old = index.get("settings", {})
    differ = [k for k in settings if old.get(k) != settings[k]]
    if streamed is not None and ("data_sources" in old) != streamed:  # shards laid out per source or not
        there = "of a streamed dataset" if "data_sources" in old else "of a dataset read whole"
        raise ProbesError(
            f"out={str(folder)!r} holds a capture {there}; capture with streaming="
            f"{'data_sources' in old} to resume it, use another folder, or force=True to start over"
        )
    if differ:
        what = "; ".join(f"{k}: {_show(settings[k])} now, {_show(old.get(k))} there" for k in differ)
        raise ProbesError(
            f"out={str(folder)!r} holds a capture made with other settings ({what}); "
            "use another folder, or force=True to start over"
        )
    return folder, index


def temporary(name: str) -> bool:
    """Whether `name` is a capture's file being written (or left half-written by a killed run)."""
    return _TEMPORARY.fullmatch(name) is not None


def clear_capture_dir(folder: Path, index: dict | None) -> None:
    """Remove a previous capture's index and shards from `folder` (only files with its names)."""
    if not folder.is_dir():
        return
    (folder / INDEX).unlink(missing_ok=True)
    for path in folder.iterdir():
        if _SHARD.fullmatch(path.name) or _LEDGER.fullmatch(path.name):
            path.unlink()


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"  # no skipped blocks reads "none", not an empty space
    return str(value)


def read_index(folder: Path) -> dict | None:
    """The index of a capture folder, None if it has none; a damaged index is an error."""
    path = folder / INDEX
    if not (path.exists() or path.is_symlink()):
        return None
    index = read_json(path, max_bytes=INDEX_BYTES)  # a folder or a dangling link by that name: one line
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ProbesError(
            f"{path}: not an index written by probes capture (format "
            f"{index.get('format') if isinstance(index, dict) else None!r})"
        )
    problem = _index_problem(index)
    if problem:
        raise ProbesError(f"{path}: a damaged capture index ({problem}); pass force=True to start over")
    return index


# What every reader of an index takes from it, and its type: a key missing or of another type is a damaged
# index, said before anything reads it (never a KeyError deep in a read).
_INDEX_KEYS = {
    "complete": bool,
    "settings": dict,
    "model": str,
    "model_source": dict,
    "versions": dict,
    "n_layers": int,
    "d_model": int,
    "n_heads": int,
    "dtype": str,
    "hooks": list,
    "layers": list,
    "bos": bool,
    "skipped_blocks": list,
    "filled": dict,
    "absent": list,
    "shapes": dict,
    "shards": list,
    "texts": list,
    "n_rows": int,
}


def _counts(xs, n: int) -> bool:
    return isinstance(xs, list) and len(xs) == n and all(type(x) is int for x in xs)


def shards_problem(shards) -> str | None:
    """What is wrong with a list of shard entries (an index's, or a rank's ledger's), or None."""
    if not isinstance(shards, list):
        return "'shards' is not a list"
    for k, shard in enumerate(shards):
        ok = (
            isinstance(shard, dict)
            and isinstance(shard.get("file"), str)
            and _SHARD.fullmatch(shard["file"])  # only a shard's name: never a path out of the folder
            and _counts(shard.get("rows"), 2)
            and isinstance(shard.get("windows"), list)
            and all(_counts(w, 3) for w in shard["windows"])
            and type(shard.get("text_base", 0)) is int
        )
        if not ok:
            return f"shard entry {k} lacks its file, rows or windows"
    return None


def records_problem(by_source) -> str | None:
    """What is wrong with a stream's records by data source ({source: record}, an index's or a ledger's), or
    None."""
    if not isinstance(by_source, dict):
        return "'sources' is not an object"
    for s, rec in by_source.items():
        ok = (
            s.isdigit()
            and isinstance(rec, dict)
            and isinstance(rec.get("texts"), list)
            and all(isinstance(t, dict) and type(t.get("windows")) is int for t in rec["texts"])
            and isinstance(rec.get("done"), bool)
            and all(type(rec.get(k)) is int for k in ("n_shards", "n_rows") if rec["done"])
        )
        problem = shards_problem(rec.get("shards")) if ok else f"the record of data source {s} is damaged"
        if problem is None and not all(
            _SOURCE_SHARD.fullmatch(e["file"]) and place(e["file"])[0] == int(s) for e in rec["shards"]
        ):
            problem = f"the record of data source {s} lists a shard of another source"
        if problem:
            return problem
    return None


def _index_problem(index: dict) -> str | None:
    """What is wrong with a parsed index's structure, or None."""

    for key, kind in _INDEX_KEYS.items():
        if not isinstance(index.get(key), kind):
            return f"{key!r} is missing or not a {kind.__name__}"
    if not all(isinstance(index["model_source"].get(k), str) for k in ("source", "path", "sha256")):
        return "'model_source' lacks its source, path or sha256"
    problem = shards_problem(index["shards"])
    if problem:
        return problem
    if "sources" in index:  # a stream's records by data source
        recorded = index["sources"]
        if not isinstance(recorded, list) or not isinstance(index.get("row_name"), str):
            return "'sources' is not a list, or 'row_name' is missing"
        problem = records_problem({str(s): rec for s, rec in enumerate(recorded) if rec is not None})
        if problem:
            return problem
    if not all(
        isinstance(t, dict) and isinstance(t.get("where"), str) and type(t.get("windows")) is int
        for t in index["texts"]
    ):
        return "a text entry lacks where it came from or its count of windows"
    return None


class ShardedActivations:
    """A dataset's captured activations on disk: texts as `Activations`, or rows in batches; read on demand.

    `len(acts)` texts; `acts[i]` text i as an `Activations` (its `stack()`, `norms()`, ... work as
    for one prompt); iterating gives every text in order; `rows()` streams rows for training
    probes or SAEs. Shards are opened with safetensors' `safe_open`, which memory-maps them, so
    only what is asked for is read.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder).expanduser()
        index = read_index(self.folder)
        if index is None:
            raise ProbesError(f"{self.folder}: no {INDEX}; not a folder written by probes capture --dataset")
        self.index = index
        self.written: dict | None = None  # set by the capture that returned this view: what it wrote
        self.names: list[str] = sorted(index["shapes"], key=hook_order)
        self.shards: list[dict] = index["shards"]
        if not index.get("complete"):  # ranks finish shards out of order: read the unbroken run from 0
            whole = 0  # (a stream's index lists only shards whose place is known: all of them)
            while whole < len(self.shards) and (
                "text_base" in self.shards[whole] or self.shards[whole]["file"] == shard_name(whole)
            ):
                whole += 1
            self.shards = self.shards[:whole]
        self.n_rows = sum(b - a for a, b in (s["rows"] for s in self.shards))
        # text -> [(shard, first row in the shard, rows)] for each of its windows, in order
        self._spans: dict[int, list[tuple[int, int, int]]] = {}
        self._strs: tuple[int, list[str]] = (-1, [])
        for k, shard in enumerate(self.shards):
            row = 0
            for text, _start, n in shard["windows"]:
                self._spans.setdefault(text, []).append((k, row, n))
                row += n
        for shard in self.shards:
            if not (self.folder / shard["file"]).is_file():
                raise ProbesError(f"{self.folder}: the index lists {shard['file']}, which is missing")

    complete = property(lambda self: bool(self.index.get("complete")), doc="Whether every text was captured.")
    dtype = property(lambda self: self.index["dtype"], doc="The storage dtype of the hook tensors.")
    texts = property(
        lambda self: [t["where"] for t in self.index["texts"][: len(self)]],
        doc="Where each text came from (file:line).",
    )

    def summary(self) -> dict:
        """What the capture holds, as `probes capture --dataset --json` prints it; `written` says what this
        run wrote (shards kept from before, shards new, whether the capture was complete already)."""
        index = self.index
        return {
            "out": str(self.folder),
            "model": index["model"],
            "model_sha256": index["model_source"]["sha256"],
            "versions": index["versions"],
            "dataset": index["settings"]["dataset"],
            "texts": len(self),
            "rows": self.n_rows,
            "shards": len(self.shards),
            "dtype": self.dtype,
            "tensors": {k: [self.n_rows, *v] for k, v in index["shapes"].items()},
            "skipped_blocks": index["skipped_blocks"],
            "absent": index["absent"],
            **({"written": self.written} if self.written is not None else {}),
        }

    def __len__(self) -> int:
        # Texts whose windows are all in finished shards (an unfinished run may hold part of the last one).
        texts = self.index["texts"]
        return (
            len(texts)
            if self.complete
            else sum(1 for i, t in enumerate(texts) if len(self._spans.get(i, ())) == t["windows"])
        )

    def __repr__(self) -> str:
        state = "" if self.complete else ", unfinished"
        return (
            f"ShardedActivations({str(self.folder)!r}: {count(len(self), 'text')}, "
            f"{count(self.n_rows, 'row')}, {count(len(self.names), 'tensor')}, "
            f"{count(len(self.shards), 'shard')}, {self.dtype}, layers "
            f"{format_layers(self.index['layers'])}{state})"
        )

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, i: int):
        """Text `i` as an Activations: tensors (pos, ...) over its windows' rows."""
        import torch

        from probes.studies.capture.activations import Activations

        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"index a ShardedActivations with a text number, not {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"text {i} is out of range: {n} texts")
        i %= n
        parts: dict[str, list[torch.Tensor]] = {}
        strs: list[str] = []
        for k, first, rows in self._spans[i]:
            with self._open(k) as fh:
                for name in [*self.names, "tokens"]:
                    parts.setdefault(name, []).append(fh.get_slice(name)[first : first + rows])
                strs += self._str_tokens(k, fh)[first : first + rows]
        tensors = {name: torch.cat(p) for name, p in parts.items()}  # (pos, ...)
        tokens = tensors.pop("tokens")
        return Activations(tensors, tokens, self._meta(i, strs))

    def stack(self, name: str, text: int | None = None, *, with_index: bool = False):
        """One hook over its layers, as `Activations.stack`: (layer, pos, ...) for text `text`, or
        (layer, rows, ...) over every row of the dataset when `text` is None (all in memory: for a
        large capture, stream `rows(name)` instead).

        `with_index=True` returns `(stacked, index)`, where `index` says where each row came from as
        `rows()` does: {'tokens', 'text', 'position': (rows,)}, the token id, the text's number and the
        position in its window (0: the window's BOS).
        """
        import torch

        if text is None:
            family = self._names(name)
            parts: dict[str, list] = {n: [] for n in family}
            for batch in self.rows(family):
                for n in family:
                    parts[n].append(batch[n])
            stacked = torch.stack([torch.cat(parts[n]) for n in family])  # (layer, rows, ...)
            spans = [(k, 0, b - a) for k, (a, b) in enumerate(s["rows"] for s in self.shards)]
        else:
            stacked = self[text].stack(name)  # (layer, pos, ...)
            spans = self._spans[text % len(self)]  # self[text] has checked the number
        return (stacked, self._bookkeeping(spans)) if with_index else stacked

    def _bookkeeping(self, spans: list[tuple[int, int, int]]) -> dict:
        """The ROW_KEYS of the rows in `spans` [(shard, first row, rows)], in order: {key: (rows,)}."""
        import torch

        parts: dict[str, list] = {key: [] for key in ROW_KEYS}
        for k, first, rows in spans:
            with self._open(k) as fh:
                for key, part in parts.items():
                    part.append(self._slice(k, fh, key, first, first + rows))
        return {key: torch.cat(part) for key, part in parts.items()}

    def rows(
        self,
        names: str | list[str] | None = None,
        batch_size: int = 4096,
        *,
        shuffle: bool = False,
        seed: int = 0,
        buffer: int | None = None,
    ) -> Iterator[dict]:
        """Every row in dataset order, `batch_size` at a time: {name: (rows, ...), 'tokens', 'text',
        'position': (rows,)}.

        `names`: hook names to read (default: all): full names (`blocks.3.hook_resid_post`), or a
        short or block-relative one (`resid_post`) for every block it was captured at. Batches are
        whole except the last, and memory holds one batch (and the part of a shard it comes from).

        `shuffle`: every row once, in an order drawn from `seed` (the same seed, the same order), for
        training a probe or an SAE, where rows in text order hurt: the shards are read in a shuffled
        order into a pool of `buffer` rows (default 64 batches), and each batch is drawn at random
        from the pool, so rows of many texts mix. Memory holds the pool and one shard.
        """
        wanted = self._names(names)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ProbesError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if shuffle:
            buffer = 64 * batch_size if buffer is None else buffer
            if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < batch_size:
                raise ProbesError(f"buffer must be an integer >= batch_size ({batch_size}), got {buffer!r}")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ProbesError(f"seed must be an integer, got {seed!r}")
            return self._shuffled(wanted, batch_size, seed, buffer)
        return self._in_order(wanted, batch_size)

    def _in_order(self, wanted: list[str], batch_size: int) -> Iterator[dict]:
        import torch

        held: dict[str, list[torch.Tensor]] = {k: [] for k in [*wanted, *ROW_KEYS]}
        n_held = 0
        for k, shard in enumerate(self.shards):
            with self._open(k) as fh:
                size = shard["rows"][1] - shard["rows"][0]
                a = 0
                while a < size:
                    b = min(size, a + batch_size - n_held)
                    for key, part in held.items():
                        part.append(self._slice(k, fh, key, a, b))
                    n_held += b - a
                    a = b
                    if n_held == batch_size:
                        yield {key: torch.cat(v) for key, v in held.items()}
                        held, n_held = {key: [] for key in held}, 0
        if n_held:
            yield {key: torch.cat(v) for key, v in held.items()}

    def _shuffled(self, wanted: list[str], batch_size: int, seed: int, buffer: int) -> Iterator[dict]:
        import torch

        gen = torch.Generator().manual_seed(seed)
        keys = [*wanted, *ROW_KEYS]
        pool: dict[str, torch.Tensor] | None = None

        def draw(pool, n):  # n random rows out of the pool: (drawn, the rest)
            pick = torch.randperm(len(pool["text"]), generator=gen)
            return {k: v[pick[:n]] for k, v in pool.items()}, {k: v[pick[n:]] for k, v in pool.items()}

        for k in torch.randperm(len(self.shards), generator=gen).tolist():
            with self._open(k) as fh:
                shard = {key: self._slice(k, fh, key) for key in keys}
            pool = shard if pool is None else {key: torch.cat([pool[key], shard[key]]) for key in keys}
            while len(pool["text"]) >= buffer + batch_size:  # keep a full pool to draw from
                batch, pool = draw(pool, batch_size)
                yield batch
        while pool is not None and len(pool["text"]):
            batch, pool = draw(pool, batch_size)
            yield batch

    def _slice(self, k: int, fh, key: str, a: int | None = None, b: int | None = None):
        """Rows [a, b) of tensor `key` of shard k (all without a and b). A stream's shard numbers its texts
        within their data source; the index says where that source's texts begin (`text_base`)."""
        part = fh.get_slice(key)[a:b] if a is not None else fh.get_tensor(key)
        base = self.shards[k].get("text_base", 0)
        return part + base if key == "text" and base else part

    def _str_tokens(self, k: int, fh) -> list[str]:
        # The last shard's strings are kept: iterating over texts parses each shard's once.
        if self._strs[0] != k:
            where = f"{self.folder / self.shards[k]['file']}: its str_tokens"
            self._strs = (k, parse_json((fh.metadata() or {}).get("str_tokens", "null"), where))
            if not isinstance(self._strs[1], list):
                raise ProbesError(f"{where}: not a list of token strings")
        return self._strs[1]

    def _names(self, names) -> list[str]:
        """Full hook names for `names`: each full name as it is, a short or block-relative one for every block
        that has it."""
        from probes.core.hooks import SHORT_NAMES, short_name, split_name
        from probes.errors import closest

        asked = self.names if names is None else [names] if isinstance(names, str) else list(names)
        wanted = []
        for name in asked:
            suffix = SHORT_NAMES.get(name, name)
            family = [n for n in self.names if split_name(n)[0] is not None and split_name(n)[1] == suffix]
            if name in self.index["shapes"]:
                wanted.append(name)
            elif family:
                wanted += sorted(family, key=lambda n: split_name(n)[0])
            else:
                shorts = list(dict.fromkeys(short_name(split_name(n)[1]) for n in self.names))
                raise ProbesError(
                    f"{name!r} was not captured{closest(name, [*shorts, *self.names])}; "
                    f"captured: {', '.join(shorts)} (at blocks {format_layers(self.index['layers'])})"
                )
        return wanted

    def _open(self, k: int):
        from safetensors import safe_open

        path = self.folder / self.shards[k]["file"]
        try:
            return safe_open(str(path), framework="pt")
        except Exception as e:  # noqa: BLE001 -- any damage to the file: one message naming it
            raise ProbesError(f"{path}: not a readable shard ({str(e).splitlines()[0][:120]})") from None

    def _meta(self, i: int, strs: list[str]):
        x = self.index
        src = x["model_source"]
        return CaptureMeta(
            model=x["model"],
            model_source=src["source"],
            model_path=src["path"],
            model_sha256=src["sha256"],
            n_layers=x["n_layers"],
            d_model=x["d_model"],
            n_heads=x["n_heads"],
            dtype=x["dtype"],
            prompt="".join(s for s, pos in zip(strs, self._positions(i)) if pos or not x["bos"]),
            bos=x["bos"],
            n_prompt_tokens=len(strs),
            str_tokens=strs,
            hooks=x["hooks"],
            layers=x["layers"],
            skipped_blocks=x["skipped_blocks"],
            filled=x["filled"],
            absent=x["absent"],
            versions=x["versions"],
        )

    def _positions(self, i: int) -> list[int]:
        return [p for _k, _first, rows in self._spans[i] for p in range(rows)]
