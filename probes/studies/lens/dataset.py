"""Lens over a dataset: per lens row, the lens's statistics averaged over every position of many texts.

    lens = probes.lens_over(model, "FILE:texts.txt")        # or a list of strings, or a Dataset
    lens.table()          # per row: the mean and a 95% interval of each metric
    lens.figure()         # one panel per metric against the row

The rows are those of `logit_lens` (the stream entering each block, then the output). At every
position of every text each row is decoded through the final norm and unembedding and compared:

    kl_to_final      KL(final || row), nats: how far the row's distribution is from the output's
    entropy          of the row's distribution, nats
    next_xent        -ln p_row(true next token), nats (the row's cross-entropy on the text)
    next_accuracy    how often the row's top-1 is the true next token
    final_agreement  how often the row's top-1 is the output's top-1

"final" is the model's own output row. With `compare_skip`, the same texts also run with those
blocks skipped, and that run is measured against the *first* run's output: its KL and agreement
say how far each pruned row, and the pruned output itself, are from the unpruned model's answer.

Texts longer than the context are cut into windows (`core/windows.py`); the true next token is
known at every position but a window's last. Memory is bounded whatever the number of texts:
batches stream through the model, rows are decoded a chunk of positions at a time, and only
per-text sums are kept (0.5 KB a text for a 12-block model), from which the bootstrap draws.
"""

from __future__ import annotations

import numpy as np
import torch

from probes.core import distributed
from probes.studies.lens.dataset_result import METRICS, DatasetLens
from probes.studies.lens.lenses import UNSET, LogitLens

_AT_EVERY_POSITION = ("kl_to_final", "entropy", "final_agreement")  # the others need the next token


def lens_over(
    model,
    data,
    *,
    split: str | None = None,
    max_texts: int | None = None,
    bos: bool = True,
    compare_skip=None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    max_tokens: int = 4096,
    max_rows: int = 64,
    lens=None,
    progress=None,
    translators=UNSET,
    mid: bool = False,
) -> DatasetLens | list[DatasetLens]:
    """The lens's per-row statistics over every position of `data`, with cluster-bootstrap intervals.

    `data` is anything `probes.core.dataset.dataset_of` reads: a list of strings, a `Dataset`, or a path
    (`FILE:path`, a `.txt`/`.jsonl` file, a saved Hugging Face dataset directory, `HF:name`; one text
    goes in a list, as a string is read as a path); `split` and `max_texts` are the Dataset's
    options. Works inside `probes.skip(...)`. `compare_skip` (a layer spec) adds `result.compare`:
    the same texts with those blocks skipped as well, measured against this run's output.
    Intervals: `level` percentile intervals from `n_boot` replicates that resample whole texts
    (seeded by `seed`). `max_tokens` / `max_rows` bound a batch.

    `lens` (a TunedLens, a lens folder or 'bundled'; None: the logit lens) reads every row but the
    output (`result.tuned_lens` names it). A list of lenses (`[None, tuned]`: the logit lens beside
    a tuned lens) gives a list of results from one pass over the data: every lens reads the same
    residual rows.

    `mid=True` adds a row after each block's attention (its `resid_mid`, before the MLP): 2L+1 rows,
    read through the logit lens, as `logit_lens(mid=True)` reads them.
    """
    from probes.core.dataset import dataset_of
    from probes.core.layers import compare_blocks
    from probes.core.shares import share_of
    from probes.core.skip import skipped_blocks
    from probes.core.windows import batches, windows
    from probes.progress import progress_of
    from probes.studies.lens.bootstrap import check_bootstrap
    from probes.studies.lens.tuned import lens_of

    check_bootstrap(n_boot, level)
    many = isinstance(lens, (list, tuple))
    lenses = [lens_of(x, model) for x in lens] if many else [lens_of(lens, model, translators)]
    if mid and not all(isinstance(one, LogitLens) for one in lenses):
        from probes.errors import SpecError

        raise SpecError(
            "mid=True reads the rows after attention through the logit lens; a tuned lens has no "
            "translators for them (leave lens=None)"
        )
    dataset = dataset_of(data, split=split, max_texts=max_texts)
    n_texts = None if dataset.streaming else len(dataset)  # reads it once, failing on a bad line first
    n_rows = (2 if mid else 1) * model.cfg.n_layers + 1
    compared = None if compare_skip is None else compare_blocks(compare_skip, model.cfg.n_layers)
    sums = [(_Sums(n_rows), _Sums(n_rows) if compared is not None else None) for _ in lenses]
    where: dict[int, str] = {}
    windows_seen, tokens = 0, 0
    p = progress_of(progress)
    share = share_of(dataset)  # a stream under torchrun: this rank reads its own texts only
    with torch.no_grad(), p.task("lens over texts", total=n_texts, unit="texts") as task:
        items = _by_length(windows(model, share.texts() if share else dataset, bos=bos), 8 * max_rows)
        rank, ranks = distributed.rank(), distributed.size()
        for b, batch in enumerate(batches(model, items, max_tokens=max_tokens, max_rows=max_rows)):
            if share or b % ranks == rank:  # otherwise each rank reads every text and computes its batches
                _lens_batch(model, batch, compared, lenses, sums, mid)
            new = {w.text: w.where for w in batch.windows if w.text not in where}
            where.update(new)
            windows_seen += len(batch.windows)
            tokens += sum(w.n_text_tokens for w in batch.windows)
            task.advance(len(new))
    order = share.order() if share else None
    if order is not None:  # the ranks read different texts: add up what each saw
        windows_seen, tokens = (int(x) for x in distributed.all_sum(np.array([windows_seen, tokens])))
    for pair in sums:
        for s in pair:
            if s is not None:
                s.combine(len(where), order)  # every rank's per-text sums on every rank, one-process order
    skipped = skipped_blocks(model)
    texts = [order.where(k) for k in range(order.n)] if order else [where[i] for i in range(len(where))]
    results = []
    for one, (main, other) in zip(lenses, sums):
        for s in (main, other):
            if s is not None:
                s.windows, s.tokens = windows_seen, tokens
        result = main.result(model, dataset, texts, skipped, "final", n_boot, seed, level, bos, mid)
        result.tuned_lens = one.name
        if other is not None:
            pruned = sorted(set(skipped) | set(compared))
            result.compare = other.result(
                model, dataset, texts, pruned, "unpruned final", n_boot, seed, level, bos, mid
            )
            result.compare.tuned_lens = one.name
        results.append(result)
    return results if many else results[0]


def _by_length(items, n: int):
    """`items` (windows) in groups of `n`, each group sorted by length: less padding, bounded memory."""
    group = []
    for w in items:
        group.append(w)
        if len(group) == n:
            yield from sorted(group, key=lambda w: len(w.ids))
            group = []
    yield from sorted(group, key=lambda w: len(w.ids))


class _Sums:
    """Per-text sums of each metric at each row, and per-text position counts, grown as texts arrive."""

    def __init__(self, n_rows: int):
        self.sums = np.zeros((16, n_rows, len(METRICS)))  # (texts, rows, metrics)
        self.counts = np.zeros((16, 2), np.int64)  # (texts, [positions, positions with a next token])
        self.n, self.windows, self.tokens = 0, 0, 0

    def combine(self, n: int, order=None) -> None:
        """Sum the per-text sums of all ranks (each read some of the `n` texts); no-op in one process.

        With `order` (`core/shares.py`: each rank read texts of its own, numbered on it) each rank's
        texts are first put at their one-process numbers, among `order.n`."""
        if distributed.size() == 1:
            return
        sums, counts = self._grown(n)
        if order is not None:
            n, mine = order.n, np.array(order.numbers, np.int64)
            sums, counts = np.zeros((n, *sums.shape[1:])), np.zeros((n, 2), np.int64)
            sums[mine], counts[mine] = self.sums[: len(mine)], self.counts[: len(mine)]
        self.sums = distributed.all_sum(sums[:n], "combining the lens sums")
        self.counts = distributed.all_sum(counts[:n], "combining the lens counts")
        self.n = n

    def _grown(self, need: int):
        if need > len(self.sums):
            grow = max(need, 2 * len(self.sums))
            self.sums = np.concatenate([self.sums, np.zeros((grow - len(self.sums), *self.sums.shape[1:]))])
            self.counts = np.concatenate([self.counts, np.zeros((grow - len(self.counts), 2), np.int64)])
        return self.sums, self.counts

    def add(self, text: np.ndarray, stats: np.ndarray, known: np.ndarray) -> None:
        """Add per-position `stats` (rows, pos, metrics) of positions belonging to texts `text` (pos,)."""
        need = int(text.max()) + 1
        self._grown(need)
        self.n = max(self.n, need)
        uniq, inverse = np.unique(text, return_inverse=True)
        onehot = (inverse[None] == np.arange(len(uniq))[:, None]).astype(np.float64)  # (texts here, pos)
        rows, pos, k = stats.shape
        self.sums[uniq] += (onehot @ stats.transpose(1, 0, 2).reshape(pos, rows * k)).reshape(-1, rows, k)
        self.counts[uniq, 0] += onehot.sum(1).astype(np.int64)
        self.counts[uniq, 1] += (onehot @ known.astype(np.float64)).astype(np.int64)

    def result(self, model, dataset, texts, skipped, reference, n_boot, seed, level, bos, mid) -> DatasetLens:
        from probes.core.load import source_of
        from probes.studies.lens.bootstrap import cluster_bootstrap
        from probes.studies.lens.logit import mid_row_hooks, row_hooks, row_labels

        sums, counts = self.sums[: self.n], self.counts[: self.n]
        rows, k = sums.shape[1:]
        per_metric = np.array([0 if m in _AT_EVERY_POSITION else 1 for m in METRICS])
        denominators = np.repeat(counts[:, per_metric][:, None, :], rows, axis=1)  # (texts, rows, metrics)
        mean, low, high = (
            a.reshape(rows, k)
            for a in cluster_bootstrap(
                sums.reshape(self.n, -1),
                denominators.reshape(self.n, -1),
                n_boot=n_boot,
                seed=seed,
                level=level,
            )
        )
        L = model.cfg.n_layers
        return DatasetLens(
            rows=mid_row_hooks(L) if mid else row_hooks(L),
            row_labels=row_labels(L, skipped, mid=mid),
            mean=mean,
            low=low,
            high=high,
            source=dataset.name,
            texts=list(texts),
            n_windows=self.windows,
            n_tokens=self.tokens,
            n_positions=int(counts[:, 0].sum()),
            n_predicted=int(counts[:, 1].sum()),
            bos=bos,
            n_boot=n_boot,
            seed=seed,
            level=level,
            reference=reference,
            model_name=source_of(model).name,
            skipped_blocks=list(skipped),
            text_sums=sums.copy(),
            text_counts=counts.copy(),
        )


def _lens_batch(model, batch, compared, lenses, sums, mid: bool = False) -> None:
    """Read one batch's rows at its real positions, a chunk of positions at a time, into each lens's sums."""
    from probes.core.runner import runner_for
    from probes.core.skip import skip
    from probes.core.stats import chunk_positions
    from probes.studies.lens.logit import mid_streams

    mask = batch.mask  # (batch, pos)
    T = batch.ids.shape[1]
    runner = runner_for(model)
    home = runner.home or batch.ids.device

    def flat(rows):  # L+1 of (batch, pos, d_model) -> (real positions, d_model) on the unembedding's device
        return [x[mask.to(x.device)].to(home) for x in rows]

    def rows(ids):  # L+1 rows, or with `mid` 2L+1 (read with hooks attached)
        return mid_streams(model, ids) if mid else runner_for(model).streams(ids)

    streams = flat(rows(batch.ids))
    pruned = None
    if compared is not None:
        with skip(model, compared):
            pruned = flat(rows(batch.ids))
    nxt = torch.roll(batch.ids, -1, dims=1)  # (batch, pos): the token after each position
    known = torch.arange(T, device=mask.device)[None] + 1 < batch.lengths[:, None]  # next token in the window
    nxt, known = nxt[mask].to(home), known[mask].to(home)  # (real positions,)
    text = np.repeat([w.text for w in batch.windows], batch.lengths.cpu().numpy())  # (real positions,)
    step = chunk_positions(model.cfg.d_vocab)
    for lens, (main, other) in zip(lenses, sums):
        rows = lens.transform_rows(model, streams)
        other_rows = None if pruned is None else lens.transform_rows(model, pruned)
        for start in range(0, len(text), step):
            part = slice(start, start + step)
            chunk = [x[part] for x in rows]
            stats = _chunk_stats(
                runner,
                chunk,
                [chunk, None if other_rows is None else [x[part] for x in other_rows]],
                nxt[part],
                known[part],
            )
            k = known[part].cpu().numpy()
            main.add(text[part], stats[0], k)
            if other is not None:
                other.add(text[part], stats[1], k)


def _chunk_stats(runner, resid, runs, nxt, known) -> list:
    """Per run in `runs` (lists of rows, each (pos, d_model)), or None: metrics (rows, pos, metrics)
    against resid's final row."""
    from probes.core.stats import RowStats

    stats = RowStats(resid[0].shape[0], runner.model.cfg.d_vocab, resid[0].device, resid[0].dtype)
    stats.reference(runner.readout(resid[-1], out=stats.logits))  # every row is compared with the output
    targets = torch.where(known, nxt, 0)  # (pos,)
    fields = ("kl", "entropy", "agreement", "next_logp", "next_hit")

    def row(x):  # (pos, len(METRICS)) in METRICS order
        logits = None if x is resid[-1] else runner.readout(x, out=stats.logits)
        got = stats.compare(logits, targets=targets, fields=fields)
        values = {
            "kl_to_final": got["kl"],
            "entropy": got["entropy"],
            "next_xent": torch.where(known, -got["next_logp"], 0.0),
            "next_accuracy": (got["next_hit"] & known).float(),
            "final_agreement": got["agreement"].float(),
        }
        return torch.stack([values[m] for m in METRICS], -1)

    def run(rows):  # (rows, pos, metrics); a skipped block's row equals the row before: same numbers
        out = []
        for r, x in enumerate(rows):
            out.append(out[-1] if r > 0 and torch.equal(x, rows[r - 1]) else row(x))
        return torch.stack(out).double().cpu().numpy()

    return [None if rows is None else run(rows) for rows in runs]
