"""A streamed dataset split between ranks: each rank reads its own data sources, and every text keeps its
place in the one-process order.

    share = share_of(dataset)         # None: not streamed, or one process (every text read, as before)
    for text in share.texts(): ...    # this rank's texts; text.index counts them on this rank
    order = share.order()             # collective: where this rank's texts stand among all
    order.numbers[i], order.n         # local text i's one-process number; all texts
    order.where(k)                    # text k's name, as one process names it ("HF:name: row k")

A Hub stream comes in data sources (`IterableDataset.n_shards`: its files, or parquet parts). Under torchrun
with at least as many sources as ranks, rank r reads sources r, r+N, ... (those
`datasets.distributed.split_dataset_by_node(strategy="shards")` assigns it) and no other byte; it reads each
source on its own (`core/dataset.py: Stream`), so it knows each text's number within its source, and `order()`
gathers each source's count, from which every text's one-process number follows. With fewer sources
than ranks, or with `max_texts` (a count in one-process order), each rank reads the whole stream through
`split_dataset_by_node(strategy="examples")` and keeps texts r, r+N, ...: read on every rank, tokenized
and computed on one. The module imports neither torch nor `datasets` until a stream is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from probes.core import distributed
from probes.core.dataset import Dataset, DatasetError, Stream, Text, checked_text, streamed_rows

SHARDS, EXAMPLES = "shards", "examples"


@dataclass(frozen=True)
class Order:
    """Where a rank's texts stand among every rank's: `numbers[i]` is local text i's one-process number."""

    numbers: list[int]
    n: int  # texts in all
    stream: Stream

    def where(self, k: int) -> str:
        return self.stream.where(k)


class Share:
    """This rank's texts of a streamed dataset under torchrun, and (after reading) their one-process order."""

    def __init__(self, dataset: Dataset, rank: int, ranks: int):
        self.stream = Stream(dataset)
        self.rank, self.ranks = rank, ranks
        whole = self.stream.n_sources >= ranks and dataset.max_texts is None
        self.strategy = SHARDS if whole else EXAMPLES
        self.keys: list[tuple[int, int]] = []  # (source, number in it) of each text read here
        self.counts: dict[int, int] = {}  # texts read here, by source

    def texts(self) -> Iterator[Text]:
        """This rank's texts, numbered from 0 on this rank. A bad text is this rank's own error (the others
        do not read it): it prints it (`distributed.own`)."""
        try:
            for k, (key, text) in enumerate(self._keyed()):
                self.keys.append(key)
                self.counts[key[0]] = self.counts.get(key[0], 0) + 1
                yield Text(k, text.where, text.text)
        except DatasetError as e:
            raise distributed.own(e) from None

    def _keyed(self) -> Iterator[tuple[tuple[int, int], Text]]:
        if self.strategy == SHARDS:
            for s in range(self.rank, self.stream.n_sources, self.ranks):
                for text in self.stream.source(s):
                    yield (s, text.index), text
            return
        # Every rank reads the stream; each keeps every N-th text (one source: numbers are one-process's).
        from datasets.distributed import split_dataset_by_node

        data = split_dataset_by_node(self.stream.data, self.rank, self.ranks, strategy=EXAMPLES)
        limit = self.stream.dataset.max_texts
        number = lambda j: j * self.ranks + self.rank  # noqa: E731 -- the j-th text kept here
        for j, (at, text) in enumerate(streamed_rows(data, lambda j: self.stream.where(number(j)))):
            k = number(j)
            if limit is not None and k >= limit:
                return
            yield (0, k), checked_text(k, at, text)

    def order(self) -> Order:
        """Every rank's texts placed in one-process order (a collective: every rank calls it once it has read
        its texts)."""
        counts = distributed.gather(self.counts, "counting the ranks' texts")
        if self.strategy == EXAMPLES:  # one numbering already: text k is number k
            n = sum(c.get(0, 0) for c in counts)
            return Order([k for _, k in self.keys], n, self.stream)
        per_source = [0] * self.stream.n_sources
        for c in counts:
            for s, m in c.items():
                per_source[s] += m
        first = [sum(per_source[:s]) for s in range(len(per_source))]
        return Order([first[s] + j for s, j in self.keys], sum(per_source), self.stream)


def split(dataset: Dataset) -> bool:
    """Whether each rank reads texts of its own of `dataset` (streamed, under torchrun) rather than all."""
    return dataset.streaming and distributed.size() > 1


def share_of(dataset: Dataset) -> Share | None:
    """This rank's share of `dataset` when it is streamed under torchrun; None otherwise (every rank reads it
    all)."""
    if not split(dataset):
        return None
    return Share(dataset, distributed.rank(), distributed.size())
