"""A streamed capture's index by data source: each source's shards and texts numbered within it, and from
them the index in one-process order.

    index["sources"][s] = {"shards": [...], "texts": [{"n_tokens", "windows"}, ...], "done": True,
                           "n_shards": 3, "n_rows": 412}
    in_order(index)                  # index["shards"], ["texts"], ["n_rows"]: one-process numbers

A stream's shards are planned per data source (a shard never spans two), so the rank that reads a source
plans and writes its shards without seeing the others (`probes.studies.capture.dataset`). A shard's entry
there numbers its rows and texts within the source, and its file (`shard-SSSSS-JJJJJ.safetensors`) stores
the text numbers so; `in_order` places each source after the ones before it, as soon as they are known,
and gives each shard's `text_base` (the reader adds it to the file's `text` column). Torch-free.
"""

from __future__ import annotations

from probes.numbers import count


def new_record() -> dict:
    """A source nothing has been recorded for."""
    return {"shards": [], "texts": [], "done": False, "n_shards": None, "n_rows": None}


def merged(a: dict | None, b: dict | None) -> dict | None:
    """What two records of one source say together: every shard once, in order; the texts, counts and
    `done` of the record that read the source whole (else the one that read more of it)."""
    if a is None or b is None:
        return a or b
    by_file = {e["file"]: e for e in a["shards"] + b["shards"]}
    whole = max((a, b), key=lambda r: (bool(r["done"]), len(r["texts"])))
    return {**whole, "shards": [by_file[f] for f in sorted(by_file)]}


def merged_all(sources: list, more: dict) -> list:
    """`sources` (one record or None per source) with the records in `more` ({source: record}) merged in."""
    out = list(sources)
    for s, rec in more.items():
        out[int(s)] = merged(out[int(s)], rec)
    return out


def local_entries(sources: list) -> list[dict]:
    """Every shard entry of every source, as its source numbers it."""
    return [e for rec in sources if rec is not None for e in rec["shards"]]


def place(name: str) -> tuple[int, int]:
    """(s, j) of shard-SSSSS-JJJJJ.safetensors: data source s, its shard j."""
    _, s, j = name.removesuffix(".safetensors").split("-")
    return int(s), int(j)


def number_in_source(name: str) -> int:
    return place(name)[1]


def in_order(index: dict) -> None:
    """Set the index's `shards`, `texts` and `n_rows` in one-process order from its `sources`.

    A source is placed once every source before it has been read whole; the first that has not gives
    the shards and texts read of it so far, and ends the list, as does the first shard missing (another
    rank's, not yet recorded): what the index lists is always the unbroken start of the stream."""
    shards, texts = [], []
    text_base = row_base = 0
    for rec in index["sources"]:
        if rec is None:
            break
        unbroken = True
        for j, e in enumerate(rec["shards"]):
            if number_in_source(e["file"]) != j:
                unbroken = False
                break
            a, b = e["rows"]
            shards.append(
                {
                    **e,
                    "rows": [a + row_base, b + row_base],
                    "windows": [[t + text_base, start, n] for t, start, n in e["windows"]],
                    "text_base": text_base,
                }
            )
        texts += [
            {**t, "where": f"{index['row_name']}: row {text_base + i}"} for i, t in enumerate(rec["texts"])
        ]
        if not (rec["done"] and unbroken):
            break
        text_base += len(rec["texts"])
        row_base += rec["n_rows"]
    index.update(shards=shards, texts=texts, n_rows=sum(b - a for a, b in (e["rows"] for e in shards)))


def unfinished(sources: list) -> str | None:
    """What keeps a stream's capture from being complete (a source not read whole, a shard not recorded), or
    None."""
    for s, rec in enumerate(sources):
        if rec is None or not rec["done"]:
            return f"data source {s + 1} of {len(sources)} was not read to its end"
        have = {number_in_source(e["file"]) for e in rec["shards"]}
        missing = sorted(set(range(rec["n_shards"])) - have)
        if missing:
            return f"{count(len(missing), 'shard')} of data source {s + 1} not recorded by any rank"
    return None
