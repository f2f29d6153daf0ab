"""Windows and batches: a dataset's texts tokenized, cut to the context, and stacked into right-padded
batches.

    for batch in batches(model, windows(model, dataset), max_tokens=8192):
        logits = model(batch.ids)            # (batch, pos, vocab); rows past batch.lengths are padding

Right padding needs no attention mask: attention is causal, so a real position never sees the padding
after it, and positions count from 0 in every row as they would alone. Windows are made lazily, so
memory holds one batch whatever the dataset's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from probes.core.dataset import Dataset, DatasetError, check_context
from probes.core.prompt import bos_id


@dataclass(frozen=True)
class Window:
    """Part of one text: `ids` (BOS first when `bos`) covering the text's tokens [start, start + n)."""

    text: int  # the text's index in the dataset
    where: str  # file:line of the text
    start: int  # offset of the window's first text token in the text's tokens
    ids: list[int]
    bos: bool

    @property
    def n_text_tokens(self) -> int:
        return len(self.ids) - self.bos


def cut(ids: list[int], n_ctx: int, bos: int | None) -> list[tuple[int, list[int]]]:
    """(start, window ids) covering `ids` in order, each at most n_ctx long with `bos` first if given.

    Windows do not overlap: a text of 2.5 contexts is three windows, each read from its own start,
    as held-out losses are usually scored (each window's first tokens see little context).
    """
    step = n_ctx - (bos is not None)
    prefix = [bos] if bos is not None else []
    return [(i, prefix + ids[i : i + step]) for i in range(0, len(ids), step)]


def windows(
    model,
    dataset: Dataset,
    *,
    bos: bool = True,
    max_tokens_per_text: int | None = None,
    score: bool = True,
) -> Iterator[Window]:
    """Every text of `dataset` as windows of at most n_ctx tokens (BOS first when `bos`).

    A text that tokenizes to nothing is an error naming its file and line. `max_tokens_per_text`
    keeps only a text's first tokens. A context too small for a window (or, when the windows are to
    be `score`d, for a prediction) is refused now, not when the first window is cut.
    """
    check_context(model.cfg.n_ctx, bos=bos, score=score)
    return _windows(model, dataset, bos, max_tokens_per_text)


def _windows(model, dataset: Dataset, bos: bool, max_tokens_per_text: int | None) -> Iterator[Window]:
    first = bos_id(model) if bos else None
    n_ctx = model.cfg.n_ctx
    for text in dataset:
        ids = list(model.tokenizer(text.text, add_special_tokens=False)["input_ids"])
        if max_tokens_per_text is not None:
            ids = ids[:max_tokens_per_text]
        if not ids:
            raise DatasetError(f"{text.where}: the text tokenizes to nothing")
        if not bos and len(ids) < 2:
            raise DatasetError(f"{text.where}: without BOS a text needs 2 tokens or more to predict one")
        for start, chunk in cut(ids, n_ctx, first):
            yield Window(text.index, text.where, start, chunk, bos)


@dataclass
class Batch:
    """Right-padded windows: ids (batch, pos) and each row's real length."""

    windows: list[Window]
    ids: torch.Tensor  # (batch, pos)
    lengths: torch.Tensor  # (batch,)

    @property
    def mask(self) -> torch.Tensor:
        """(batch, pos) True where the position holds a real token."""
        return torch.arange(self.ids.shape[1], device=self.ids.device)[None] < self.lengths[:, None]

    def part(self, rank: int, ranks: int) -> Batch | None:
        """Rows rank, rank + ranks, ... of the batch (one rank's share under torchrun); None if it has none.
        The whole batch with one rank."""
        if ranks == 1:
            return self
        if rank >= len(self.windows):
            return None
        return Batch(self.windows[rank::ranks], self.ids[rank::ranks], self.lengths[rank::ranks])


def batches(model, items: Iterable[Window], *, max_tokens: int = 8192, max_rows: int = 64) -> Iterator[Batch]:
    """Group windows into batches of at most `max_rows` rows and about `max_tokens` padded tokens.

    A batch closes when adding the next window would pass either limit, so a long window never
    waits behind short ones for long.
    """
    device = model.cfg.device or "cpu"
    pad = bos_id(model)
    group: list[Window] = []
    longest = 0

    def emit() -> Batch:
        T = max(len(w.ids) for w in group)
        ids = torch.full((len(group), T), pad, dtype=torch.long)
        for r, w in enumerate(group):
            ids[r, : len(w.ids)] = torch.tensor(w.ids)
        lengths = torch.tensor([len(w.ids) for w in group])
        return Batch(list(group), ids.to(device), lengths.to(device))

    for w in items:
        size = max(longest, len(w.ids)) * (len(group) + 1)
        if group and (len(group) >= max_rows or size > max_tokens):
            yield emit()
            group, longest = [], 0
        group.append(w)
        longest = max(longest, len(w.ids))
    if group:
        yield emit()
