"""Capture over a dataset: stream every window through the hooked model into size-bounded shards on disk,
resumably.

    acts = probes.capture(model, Dataset("FILE:texts.txt"), hooks="resid_post", out="states/",
                          store_dtype="float16", shard_bytes="128M")
    acts[0].stack("resid_post")              # (layer, pos, d_model): text 0, read back lazily

Shards are planned from the windows alone (whole windows, at most `shard_bytes` of rows each) and
each shard is computed in its own batches, so a resumed run writes exactly the bytes an
uninterrupted one does. A shard is written under a temporary name and renamed; then the index is
rewritten (atomically) to list it. An interrupt, a full disk or a crash leaves whole shards and an
index listing only those; rerunning the same call skips them (checking that the settings and the
dataset's tokens are the ones they were made from). Memory holds one shard at most, whatever the
number of texts. The format and the lazy reader are in `probes.studies.capture.shards`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from probes.core import distributed
from probes.core.dataset import Dataset, Stream, Text, dataset_of
from probes.core.hooks import attached, check_row_hooks, resolve_hooks, split_name
from probes.core.layers import parse_layers
from probes.core.prompt import bos_id, token_strings
from probes.core.runner import runner_for
from probes.core.windows import Window, batches, windows
from probes.errors import ProbesError
from probes.io import WriteFailed, atomic_path, owned_folder, parse_size, write_text
from probes.jsonread import read_json
from probes.numbers import count
from probes.progress import progress_of
from probes.studies.capture import format as capture_format
from probes.studies.capture import sources
from probes.studies.capture.record import Recorder, hook_plan
from probes.studies.capture.shards import (
    FORMAT,
    INDEX,
    INDEX_BYTES,
    LEDGER,
    LEDGER_FORMAT,
    LEDGER_GLOB,
    SHARD_BYTES,
    ShardedActivations,
    check_capture_dir,
    check_store_dtype,
    clear_capture_dir,
    records_problem,
    shard_name,
    shards_problem,
    temporary,
)


def capture_dataset(
    model,
    data: Iterable[str] | Dataset | str,
    *,
    out,
    hooks: Iterable[str] | str = ("resid_pre", "resid_post"),
    layers=None,
    bos: bool = True,
    store_dtype: str | None = None,
    shard_bytes: int | str = SHARD_BYTES,
    split: str | None = None,
    max_texts: int | None = None,
    max_tokens: int = 2048,
    max_rows: int = 64,
    force: bool = False,
    progress=None,
) -> ShardedActivations:
    """Record `hooks` at `layers` for every token of every text of `data` into the folder `out`; return its
    lazy view.

    `data`: a list of texts, a `Dataset`, or what `Dataset` reads (`FILE:texts.txt`, `.jsonl`, a
    saved dataset folder), with `split` / `max_texts` as there. Texts longer than the context are
    cut into windows (BOS first in each when `bos`). `store_dtype` (float32, float16, bfloat16;
    default: the model's) is how the tensors are stored; `shard_bytes` bounds each shard (bytes or
    '128M'). Batches hold about `max_tokens` padded tokens, `max_rows` windows at most. An existing
    capture with the same settings is resumed; one with other settings, or a folder holding other
    files, is an error unless `force` (which starts over). Works inside `probes.skip(...)`.
    """
    from probes.core.skip import skipped_blocks
    from probes.meta import model_meta

    n_layers = model.cfg.n_layers
    chosen = list(range(n_layers)) if layers is None else parse_layers(layers, n_layers)
    requested = [h.strip() for h in hooks.split(",")] if isinstance(hooks, str) else list(hooks)
    names = resolve_hooks(model, requested, chosen)
    check_row_hooks(names)
    store = check_store_dtype(store_dtype) or str(model.cfg.dtype).removeprefix("torch.")
    shard_bytes = parse_size(shard_bytes, "shard_bytes")
    dataset = dataset_of(data, split=split, max_texts=max_texts)
    n_texts = dataset.check()  # every bad line fails now, before any shard is written
    meta = model_meta(model)
    plan, zeros, absent = hook_plan(names, set(skipped_blocks(model)))
    settings = {
        "dataset": dataset.name,
        "split": dataset.split,
        "max_texts": dataset.max_texts,
        "hooks": requested,
        "layers": chosen,
        "bos": bos,
        "store_dtype": store,
        "shard_bytes": shard_bytes,
        "max_tokens": max_tokens,
        "max_rows": max_rows,
        "model": meta["model"],
        "model_sha256": meta["model_source"]["sha256"],
        "compute_dtype": str(model.cfg.dtype).removeprefix("torch."),
        "skipped_blocks": meta["skipped_blocks"],
    }
    stream = Stream(dataset) if dataset.streaming else None  # shards planned per data source
    if stream is not None:
        settings["data_sources"] = stream.n_sources
    p = progress_of(progress)
    dtype = getattr(torch, store)
    rec = Recorder(dtype)
    stop = _stop_point(names)
    with ExitStack() as held:
        held.enter_context(
            attached(model, [(src, rec.hook(key)) for src, key in plan] + ([(stop, _stop)] if stop else []))
        )
        held.enter_context(torch.no_grad())
        shapes = _row_shapes(model, rec, plan)
        for name in zeros:
            shapes[name] = [model.cfg.d_model]
        item = torch.empty((), dtype=dtype).element_size()
        row_bytes = sum(_numel(s) for s in shapes.values()) * item + 8 * 3  # + tokens, text, position (int64)
        index = {
            "format": FORMAT,
            "complete": False,
            "settings": settings,
            "model": meta["model"],
            "model_source": meta["model_source"],
            "versions": meta["versions"],
            "n_layers": n_layers,
            "d_model": model.cfg.d_model,
            "n_heads": model.cfg.n_heads,
            "dtype": store,
            "hooks": requested,
            "layers": chosen,
            "bos": bos,
            "skipped_blocks": meta["skipped_blocks"],
            "filled": {**{k: "copy of resid_pre" for s, k in plan if s != k}, **{k: "zeros" for k in zeros}},
            "absent": absent,
            "shapes": shapes,
            "shards": [],
            "texts": [],
            "n_rows": 0,
        }
        if stream is not None:
            index.update(sources=[None] * stream.n_sources, row_name=stream.name)
        folder, done, was_complete = _claim(out, settings, force, index, held)
        if done:
            p.note(
                f"{'checking' if was_complete else 'resuming'} the capture in {folder}: "
                f"{count(len(done), 'shard')} already written"
            )
        run = _Run(model, rec, plan, zeros, max_tokens, max_rows, folder, max(1, shard_bytes // row_bytes))
        with p.task("capture", total=n_texts, unit="texts") as task:
            if stream is None:
                _capture_texts(run, dataset, bos, index, done, task)
            else:
                _capture_stream(run, stream, bos, index, done, task)
    acts = ShardedActivations(folder)
    acts.written = {"kept": len(done), "new": len(acts.shards) - len(done), "was_complete": was_complete}
    return acts


@dataclass(frozen=True)
class _Run:
    """What computes and writes one capture's shards."""

    model: object
    rec: Recorder
    plan: list
    zeros: list
    max_tokens: int
    max_rows: int
    folder: Path
    rows_per_shard: int

    def entry(self, name: str, group, first_row: int) -> tuple[dict, torch.Tensor]:
        """(the index entry of shard `name` holding `group`'s windows from row `first_row`, its tokens)."""
        tokens = torch.tensor([i for w, _ in group for i in w.ids], dtype=torch.int64)  # (rows,)
        entry = {
            "file": name,
            "rows": [first_row, first_row + len(tokens)],
            "windows": [[w.text, w.start, len(w.ids)] for w, _ in group],
            "tokens_sha256": hashlib.sha256(tokens.numpy().tobytes()).hexdigest(),
        }
        return entry, tokens

    def write(self, entry: dict, group, tokens: torch.Tensor, task, record, finished: int) -> None:
        """Compute the shard's tensors and write its file; then `record()` lists it. A failed write is this
        rank's one-line error, saying that `finished` shards are listed."""
        model, folder = self.model, self.folder
        tensors = _compute(
            model, self.rec, self.plan, self.zeros, group, self.max_tokens, self.max_rows, task
        )
        tensors.update(_bookkeeping(group, tokens))
        strs = _str_tokens(model, tokens)
        try:
            with atomic_path(folder / entry["file"], force=True) as tmp:
                # One metadata key: safetensors orders several in a random (hash) order, and a
                # resumed shard must be byte-identical to the one an uninterrupted run writes.
                capture_format.write_tensors(
                    tensors, tmp, {"str_tokens": json.dumps(strs, ensure_ascii=False)}
                )
            record()
        except (OSError, WriteFailed) as e:
            why = e.reason if isinstance(e, WriteFailed) else e.strerror or e
            raise distributed.own(
                ProbesError(
                    f"{folder}: writing {entry['file']} failed ({why}); the index lists the {finished} "
                    "finished shards; rerun the same command to resume"
                )
            ) from None

    def changed(self, name: str) -> str:
        return (
            f"{self.folder}: the dataset's tokens differ from those {name} was made from (the dataset "
            "changed?); pass force=True to start over"
        )


def _capture_texts(run: _Run, dataset: Dataset, bos: bool, index: dict, done: dict, task) -> None:
    """Shards numbered over the whole dataset; under torchrun shard k is rank k mod N's (every rank reads
    every text to plan them)."""
    folder = run.folder
    mine = None if distributed.is_main() else []  # rank 0 lists shards in the index, others in a ledger
    made, n_rows = 0, 0  # shards the dataset gives now, and rows before the next
    rank, ranks = distributed.rank(), distributed.size()
    for k, group in enumerate(_shards(run.model, dataset, bos, run.rows_per_shard, index["texts"])):
        made = k + 1
        entry, tokens = run.entry(shard_name(k), group, n_rows)
        n_rows = entry["rows"][1]
        if entry["file"] in done:
            if done[entry["file"]] != entry:
                raise distributed.Agreed(run.changed(entry["file"]))
            task.advance(sum(last for _, last in group))
            continue
        if k % ranks != rank:  # another rank's shard
            task.advance(sum(last for _, last in group))
            continue

        def record(entry=entry):
            if mine is None:
                _list(index, entry)
                _save_index(folder, index)
            else:
                mine.append(entry)
                _save_ledger(folder, rank, mine)

        run.write(entry, group, tokens, task, record, len(index["shards"]) + len(mine or []))
    if any(_number(name) >= made for name in done):
        # the dataset shrank: the old shards past its end hold texts it lacks now
        raise distributed.Agreed(
            f"{folder}: the dataset now gives {count(made, 'shard')}, the capture holds {len(done)} "
            "(the dataset changed?); pass force=True to start over"
        )
    _agreed_finish(lambda: _finish(folder, index, _listed_texts(folder, index, made, n_rows)))


def _capture_stream(run: _Run, stream: Stream, bos: bool, index: dict, done: dict, task) -> None:
    """Shards planned per data source (`capture/sources.py`). Under torchrun with at least as many sources as
    ranks each rank reads only its own sources (r, r+N, ...) and writes all their shards; otherwise every
    rank reads every source and writes shard k (counted over the stream) when k mod N is its rank. Rank 0
    records in the index, the others in their ledgers; rank 0 puts the index in one-process order at the
    end."""
    folder = run.folder
    rank, ranks = distributed.rank(), distributed.size()
    own = ranks > 1 and stream.n_sources >= ranks and stream.dataset.max_texts is None
    reading = (
        ((s, stream.source(s, own=True)) for s in range(rank, stream.n_sources, ranks))
        if own
        else stream.sources()
    )
    keeps_texts = own or rank == 0  # who records each source's texts and counts
    mine: dict[int, dict] = {}  # this rank's records, by source

    def save(s: int) -> None:
        for text in mine[s]["texts"]:  # named once the rows before it are known (`sources.in_order`)
            text.pop("where", None)
        if distributed.is_main():
            index["sources"][s] = sources.merged(index["sources"][s], mine[s])
            sources.in_order(index)
            _save_index(folder, index)
        else:
            _save_ledger(folder, rank, [], mine)

    problem, k = None, 0
    for s, texts in reading:
        mine[s] = rec = sources.new_record()
        made, n_rows = 0, 0
        read = rec["texts"] if keeps_texts else []
        for j, group in enumerate(_shards(run.model, texts, bos, run.rows_per_shard, read)):
            made = j + 1
            entry, tokens = run.entry(shard_name(j, s), group, n_rows)
            n_rows = entry["rows"][1]
            turn, k = own or k % ranks == rank, k + 1
            if entry["file"] in done:
                if done[entry["file"]] != entry:
                    problem = run.changed(entry["file"])
                    break
                task.advance(sum(last for _, last in group))
                continue
            if not turn:
                task.advance(sum(last for _, last in group))
                continue
            finished = (
                len(index["shards"])
                if distributed.is_main()
                else sum(len(r["shards"]) for r in mine.values())
            )
            run.write(
                entry,
                group,
                tokens,
                task,
                lambda e=entry, r=rec, s=s: (r["shards"].append(e), save(s)),
                finished,
            )
        if problem is None and any(
            sources.place(name) >= (s, made) for name in done if sources.place(name)[0] == s
        ):
            problem = (
                f"{folder}: data source {s + 1} now gives {count(made, 'shard')}, fewer than the capture "
                "holds (the dataset changed?); pass force=True to start over"
            )
        if problem is not None:
            break
        if keeps_texts:
            rec.update(done=True, n_shards=made, n_rows=n_rows)
        save(s)
    problem = next((p for p in distributed.gather(problem, "checking the capture") if p), None)
    if problem is not None:
        raise distributed.Agreed(problem)
    _agreed_finish(lambda: _finish(folder, index, _listed_stream(folder, index)))


def _agreed_finish(finish) -> None:
    """Once every rank's shards are written, rank 0 runs `finish()`; its error is every rank's."""
    distributed.barrier("the capture")
    failed = None
    if distributed.is_main():
        try:
            finish()
        except ProbesError as e:
            failed = str(e)
    failed = distributed.from_main(failed, "finishing the capture")
    if failed is not None:
        raise distributed.Agreed(failed)


def _claim(out, settings: dict, force: bool, index: dict, held: ExitStack) -> tuple[Path, dict, bool]:
    """(folder, {file: entry} of the shards already written, whether the capture was complete).

    Rank 0 (the only rank without torchrun) checks the folder, takes it (`owned_folder`: a second capture
    on it fails until this one ends), checks it again now that no one else can write, and lists in
    the index the shards that other ranks of an earlier, interrupted run recorded in their ledgers;
    the other ranks hear its answer.
    """
    answer, error = None, None
    if distributed.is_main():
        try:
            streamed = "data_sources" in settings
            folder, _ = check_capture_dir(out, settings, force, streamed=streamed)
            held.enter_context(owned_folder(folder, "probes capture"))
            folder, old = check_capture_dir(out, settings, force, streamed=streamed)
            if force:
                clear_capture_dir(folder, old)
                old = None
            _drop_temporaries(folder)
            ledgers, by_source = _ledgers(folder)
            if "sources" in index:  # a stream: records by data source, the index's lists made from them
                recorded = sources.merged_all(old["sources"] if old else index["sources"], by_source)
                claimed = {**index, "sources": recorded}
                sources.in_order(claimed)
                shards = sources.local_entries(recorded)
            else:
                recorded = None
                shards = _merged(old["shards"] if old else [], ledgers)
                claimed = {**index, "shards": shards, "texts": old["texts"] if old else []}
            if old is None or ledgers or by_source:  # a new capture lists nothing yet; a resumed one every
                _save_index(folder, claimed)  # whole shard
                _drop_ledgers(folder)
            answer = (str(folder), shards, bool(old and old.get("complete")), recorded)
        except ProbesError as e:
            answer, error = str(e), e
        except OSError as e:
            answer = f"{out}: cannot start the capture there ({e.strerror or e})"
            error = ProbesError(answer)
    answer = distributed.from_main(answer, "claiming the capture folder")
    if isinstance(answer, str):
        raise error if error is not None else distributed.Agreed(answer)
    folder, shards, was_complete, recorded = answer
    if recorded is None:
        index["shards"] = shards
    else:
        index["sources"] = recorded
        sources.in_order(index)
    return Path(folder), {e["file"]: e for e in shards}, was_complete


def _ledgers(folder: Path) -> tuple[list[dict], dict[int, dict]]:
    """What ranks other than 0 recorded in their ledgers (index.rank-N.json): shard entries, and a stream's
    records by data source."""
    entries, by_source = [], {}
    for path in sorted(folder.glob(LEDGER_GLOB)):
        ledger = read_json(path, max_bytes=INDEX_BYTES)
        if not isinstance(ledger, dict):
            problem = "not a JSON object"
        elif ledger.get("format") != LEDGER_FORMAT:
            problem = f"format {ledger.get('format')!r}"
        else:
            problem = shards_problem(ledger.get("shards")) or records_problem(ledger.get("sources", {}))
        if problem:
            raise ProbesError(
                f"{path}: not a ledger of probes capture ({problem}); pass force=True to start over"
            )
        entries += ledger["shards"]
        for s, rec in ledger.get("sources", {}).items():
            by_source[int(s)] = sources.merged(by_source.get(int(s)), rec)
    return entries, by_source


def _drop_temporaries(folder: Path) -> None:
    """Remove what a killed run (SIGKILL, a lost machine) left half-written: temporary names of shards,
    ledgers and the index. Only while the folder is held, so no live writer owns them."""
    for path in folder.glob(".*.tmp"):
        if temporary(path.name):
            path.unlink(missing_ok=True)


def _drop_ledgers(folder: Path) -> None:
    for path in folder.glob(LEDGER_GLOB):
        path.unlink(missing_ok=True)


def _merged(*lists: list[dict]) -> list[dict]:
    """Shard entries, each file once, in shard order."""
    by_file = {e["file"]: e for entries in lists for e in entries}
    return [by_file[f] for f in sorted(by_file)]


def _list(index: dict, entry: dict) -> None:
    """Add `entry` to the index's shards, in shard order."""
    index["shards"] = _merged(index["shards"], [entry])
    index["n_rows"] = sum(b - a for a, b in (e["rows"] for e in index["shards"]))


def _number(name: str) -> int:
    return int(name.removeprefix("shard-").removesuffix(".safetensors"))


def _save_ledger(folder: Path, rank: int, entries: list[dict], by_source: dict | None = None) -> None:
    ledger = {"format": LEDGER_FORMAT, "shards": entries}
    if by_source is not None:  # a stream's records, by data source
        ledger["sources"] = {str(s): rec for s, rec in by_source.items()}
    write_text(folder / LEDGER.format(rank=rank), json.dumps(ledger, ensure_ascii=False), force=True)


def _finish(folder: Path, index: dict, listed) -> None:
    """`listed(ledgers)` lists every rank's shards in the index (or raises what is missing); then the index is
    marked complete and the ledgers go."""
    try:
        listed(_ledgers(folder))
        index.update(complete=True, n_texts=len(index["texts"]))
        _save_index(folder, index)
        _drop_ledgers(folder)
    except (OSError, WriteFailed) as e:
        why = e.reason if isinstance(e, WriteFailed) else e.strerror or e
        raise ProbesError(
            f"{folder}: writing {INDEX} failed ({why}); rerun the same command to finish"
        ) from None


def _listed_texts(folder: Path, index: dict, made: int, n_rows: int):
    """Lists the `made` shards of a dataset read whole: those of the index and of the ledgers."""

    def listed(ledgers) -> None:
        shards = _merged(index["shards"], ledgers[0])
        missing = sorted(set(range(made)) - {_number(e["file"]) for e in shards})
        if missing:
            raise ProbesError(
                f"{folder}: {count(len(missing), 'shard')} ({shard_name(missing[0])}, ...) not recorded by "
                "any rank; rerun the same command to finish"
            )
        index.update(shards=shards, n_rows=n_rows)

    return listed


def _listed_stream(folder: Path, index: dict):
    """Lists a stream's shards and texts in one-process order from every rank's records by data source."""

    def listed(ledgers) -> None:
        merged = sources.merged_all(index["sources"], ledgers[1])
        problem = sources.unfinished(merged)
        if problem:
            raise ProbesError(f"{folder}: {problem}; rerun the same command to finish")
        index["sources"] = merged
        sources.in_order(index)

    return listed


def _shards(
    model, dataset: Iterable[Text], bos: bool, rows_per_shard: int, texts: list
) -> Iterator[list[tuple[Window, bool]]]:
    """Groups of whole windows, at most `rows_per_shard` rows each (one window at least); each with whether it
    ends its text.

    Appends each text's record to `texts` as it is read.
    """
    group: list[tuple[Window, bool]] = []
    rows = 0
    for ws in _by_text(windows(model, dataset, bos=bos, score=False)):
        texts.append({"where": ws[0].where, "n_tokens": sum(w.n_text_tokens for w in ws), "windows": len(ws)})
        for j, w in enumerate(ws):
            if group and rows + len(w.ids) > rows_per_shard:
                yield group
                group, rows = [], 0
            group.append((w, j == len(ws) - 1))
            rows += len(w.ids)
    if group:
        yield group


def _by_text(items: Iterable[Window]) -> Iterator[list[Window]]:
    """Consecutive windows grouped by text."""
    group: list[Window] = []
    for w in items:
        if group and w.text != group[0].text:
            yield group
            group = []
        group.append(w)
    if group:
        yield group


class _Stopped(Exception):
    """Raised by the hook after the last one a capture records."""


def _stop(t, hook):
    raise _Stopped


def _stop_point(names: list[str]) -> str | None:
    """The hook after which nothing recorded remains: the last block's output (None if a name lies past the
    blocks).

    Stopping there skips the later blocks and the logits, (batch, pos, vocab), the largest tensor
    of a forward: most of the memory a batch takes, and for GPT-2 a third of its work.
    """
    blocks = [split_name(n)[0] for n in names]
    if any(b is None and not n.startswith(("hook_embed", "hook_pos_embed")) for b, n in zip(blocks, names)):
        return None
    return f"blocks.{max((b for b in blocks if b is not None), default=0)}.hook_resid_post"


def _forward(model, ids: torch.Tensor) -> None:
    try:
        runner_for(model).logits(ids)  # the recording hooks are attached: the hooked runner
    except _Stopped:
        pass


def _row_shapes(model, rec: Recorder, plan) -> dict[str, list[int]]:
    """Each recorded hook's per-position shape, from a one-token forward."""
    ids = torch.tensor([[bos_id(model)]], device=model.cfg.device or "cpu")
    rec.mask = torch.ones_like(ids, dtype=torch.bool)
    _forward(model, ids)
    return {key: list(rec.store.pop(key)[0].shape[1:]) for _, key in _fired(rec, plan)}


def _fired(rec: Recorder, plan):
    for src, key in plan:
        if key not in rec.store:
            raise ProbesError(
                f"hook {key!r} never fired: TransformerLens' bridge does not compute it for GPT-2; "
                "choose another hook point (see `probes info`)"
            )
        yield src, key


def _compute(
    model, rec: Recorder, plan, zeros, group, max_tokens: int, max_rows: int, task
) -> dict[str, torch.Tensor]:
    """{name: (rows, ...)} for the windows of one shard, in order, batch by batch."""
    parts: dict[str, list[torch.Tensor]] = {key: [] for _, key in plan}
    for batch in batches(model, [w for w, _ in group], max_tokens=max_tokens, max_rows=max_rows):
        rec.mask = batch.mask  # (batch, pos): the hooks keep only real positions
        _forward(model, batch.ids)
        for _, key in _fired(rec, plan):
            parts[key].append(rec.store.pop(key)[0])  # (rows, ...)
        lasts = {id(w) for w, last in group if last}
        task.advance(sum(id(w) in lasts for w in batch.windows))
    tensors = {key: torch.cat(parts.pop(key)) for key in list(parts)}  # pop: free each part as it is joined
    n = sum(len(w.ids) for w, _ in group)
    for name in zeros:
        tensors[name] = torch.zeros(
            n, model.cfg.d_model, dtype=rec.dtype
        )  # (rows, d_model): a skipped block adds nothing
    return tensors


def _bookkeeping(group, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    text = torch.cat([torch.full((len(w.ids),), w.text, dtype=torch.int64) for w, _ in group])  # (rows,)
    position = torch.cat([torch.arange(len(w.ids), dtype=torch.int64) for w, _ in group])  # (rows,)
    return {"tokens": tokens, "text": text, "position": position}


def _str_tokens(model, tokens: torch.Tensor) -> list[str]:
    """Each row's token decoded on its own (`token_strings`), each distinct id decoded once."""
    return token_strings(model.tokenizer, tokens.tolist())


def _save_index(folder: Path, index: dict) -> None:
    write_text(folder / INDEX, json.dumps(index, ensure_ascii=False), force=True)


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
