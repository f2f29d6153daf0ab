"""Lens over a dataset: per lens row, the logit lens's statistics averaged over every position of many texts.

    lens = probes.lens_over(model, "FILE:texts.txt")        # or a list of strings, or a Dataset
    lens.table()          # per row: the mean and a 95% interval of each metric
    lens.figure()         # one panel per metric against the row

The rows are those of `logit_lens` (the stream entering each block, then the output). At every
position of every text each row is decoded through the final norm and unembedding and compared:

    kl_to_final      KL(final || row), bits: how far the row's distribution is from the output's
    entropy          of the row's distribution, bits
    next_xent        -log2 p_row(true next token), bits (the row's cross-entropy on the text)
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

import math

import numpy as np
import torch

from probes.studies.lens_dataset_result import METRICS, DatasetLens

LN2 = math.log(2.0)

# Elements per (positions, vocab) work buffer; six buffers at once (16 MiB each in float32).
_CHUNK_ELEMENTS = 1 << 22
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
    translators=None,
    progress=None,
) -> DatasetLens:
    """The logit lens's per-row statistics over every position of `data`, with cluster-bootstrap intervals.

    `data` is a list of strings, a `probes.core.dataset.Dataset`, or a path (`FILE:path`, a `.txt`/`.jsonl`
    file, a saved Hugging Face dataset directory, `HF:name`; one text goes in a list, as a string is read as a
    path); `split` and `max_texts` are the Dataset's options. Works inside `probes.skip(...)`. `compare_skip`
    (a layer spec) adds `result.compare`: the same texts with those blocks skipped as well, measured against
    this run's output. Intervals: `level` percentile intervals from `n_boot` replicates that resample whole
    texts (seeded by `seed`). `max_tokens` / `max_rows` bound a batch. `translators` (a TunedLens, a lens
    folder or 'bundled') reads every row but the output through its tuned-lens translator: the tuned lens over
    the dataset (`result.tuned_lens` names it).
    """
    from probes.core.dataset import Dataset
    from probes.core.layers import compare_blocks
    from probes.core.skip import skipped_blocks
    from probes.core.windows import batches, windows
    from probes.progress import progress_of
    from probes.studies.bootstrap import check_bootstrap
    from probes.studies.tuned_lens import tuned_of

    check_bootstrap(n_boot, level)
    translators = tuned_of(translators, model)
    options = {k: v for k, v in (("split", split), ("max_texts", max_texts)) if v is not None}
    dataset = Dataset.of(data, **options)
    n_texts = len(dataset)  # reads the dataset once (torch-free) and fails on a bad line first
    n_rows = model.cfg.n_layers + 1
    compared = None if compare_skip is None else compare_blocks(compare_skip, model.cfg.n_layers)
    main, other = _Sums(n_rows), (_Sums(n_rows) if compared is not None else None)
    where: dict[int, str] = {}
    p = progress_of(progress)
    with torch.no_grad(), p.task("lens over texts", total=n_texts, unit="texts") as task:
        items = _by_length(windows(model, dataset, bos=bos), 8 * max_rows)
        for batch in batches(model, items, max_tokens=max_tokens, max_rows=max_rows):
            _lens_batch(model, batch, compared, main, other, translators)
            new = {w.text: w.where for w in batch.windows if w.text not in where}
            where.update(new)
            main.windows += len(batch.windows)
            main.tokens += sum(w.n_text_tokens for w in batch.windows)
            task.advance(len(new))
    skipped = skipped_blocks(model)
    texts = [where[i] for i in range(len(where))]
    result = main.result(model, dataset, texts, skipped, "final", n_boot, seed, level, bos)
    result.tuned_lens = None if translators is None else translators.name
    if other is not None:
        other.windows, other.tokens = main.windows, main.tokens
        result.compare = other.result(
            model,
            dataset,
            texts,
            sorted(set(skipped) | set(compared)),
            "unpruned final",
            n_boot,
            seed,
            level,
            bos,
        )
        result.compare.tuned_lens = result.tuned_lens
    return result


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

    def add(self, text: np.ndarray, stats: np.ndarray, known: np.ndarray) -> None:
        """Add per-position `stats` (rows, pos, metrics) of positions belonging to texts `text` (pos,)."""
        need = int(text.max()) + 1
        if need > len(self.sums):
            grow = max(need, 2 * len(self.sums))
            self.sums = np.concatenate([self.sums, np.zeros((grow - len(self.sums), *self.sums.shape[1:]))])
            self.counts = np.concatenate([self.counts, np.zeros((grow - len(self.counts), 2), np.int64)])
        self.n = max(self.n, need)
        uniq, inverse = np.unique(text, return_inverse=True)
        onehot = (inverse[None] == np.arange(len(uniq))[:, None]).astype(np.float64)  # (texts here, pos)
        rows, pos, k = stats.shape
        self.sums[uniq] += (onehot @ stats.transpose(1, 0, 2).reshape(pos, rows * k)).reshape(-1, rows, k)
        self.counts[uniq, 0] += onehot.sum(1).astype(np.int64)
        self.counts[uniq, 1] += (onehot @ known.astype(np.float64)).astype(np.int64)

    def result(self, model, dataset, texts, skipped, reference, n_boot, seed, level, bos) -> DatasetLens:
        from probes.core.load import source_of
        from probes.studies.bootstrap import cluster_bootstrap
        from probes.studies.lens import row_hooks, row_labels

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
            rows=row_hooks(L),
            row_labels=row_labels(L, skipped),
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


def residual_rows(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """The L+1 lens rows of a right-padded batch `ids` (batch, pos), each (batch, pos, d_model)."""
    from probes.core.hooks import attached
    from probes.studies.lens import row_hooks

    names = row_hooks(model.cfg.n_layers)
    resid: list[torch.Tensor | None] = [None] * len(names)

    def keep(r):
        def hook(t, hook):
            resid[r] = t.detach().clone()  # (batch, pos, d_model)

        return hook

    B, T = ids.shape
    positions = torch.arange(T, device=ids.device)[None].expand(
        B, T
    )  # right padding: every row counts from 0
    with attached(model, [(n, keep(r)) for r, n in enumerate(names)]):
        # The transformer body only: the rows are decoded here, so lm_head would be wasted.
        model.original_model.transformer(input_ids=ids, position_ids=positions)
    assert all(x is not None for x in resid), "a residual hook did not fire"
    return resid


def _lens_batch(model, batch, compared, main: _Sums, other: _Sums | None, translators=None) -> None:
    """Decode one batch's rows at its real positions, a chunk of positions at a time, into the sums."""
    from probes.core.skip import skip

    mask = batch.mask  # (batch, pos)
    T = batch.ids.shape[1]
    home = model.unembed.original_component.weight.device
    if home.type == "meta":  # offloaded weights: accelerate's hook moves inputs in
        home = batch.ids.device

    def flat(rows):  # L+1 of (batch, pos, d_model) -> (real positions, d_model) on the unembedding's device
        return [x[mask.to(x.device)].to(home) for x in rows]

    def through(rows):  # the tuned lens: each row but the output through its translator
        return rows if translators is None else translators.translate_rows(model, rows)

    streams = through(flat(residual_rows(model, batch.ids)))
    pruned = None
    if compared is not None:
        with skip(model, compared):
            pruned = through(flat(residual_rows(model, batch.ids)))
    nxt = torch.roll(batch.ids, -1, dims=1)  # (batch, pos): the token after each position
    known = (
        torch.arange(T, device=mask.device)[None] + 1 < batch.lengths[:, None]
    )  # next token inside the window
    nxt, known = nxt[mask].to(home), known[mask].to(home)  # (real positions,)
    text = np.repeat([w.text for w in batch.windows], batch.lengths.cpu().numpy())  # (real positions,)
    step = max(1, _CHUNK_ELEMENTS // model.cfg.d_vocab)
    for start in range(0, len(text), step):
        part = slice(start, start + step)
        stats, other_stats = _chunk_stats(
            model,
            [x[part] for x in streams],
            None if pruned is None else [x[part] for x in pruned],
            nxt[part],
            known[part],
        )
        k = known[part].cpu().numpy()
        main.add(text[part], stats, k)
        if other is not None:
            other.add(text[part], other_stats, k)


def _chunk_stats(model, resid, pruned, nxt, known):
    """Per-position metrics (rows, pos, metrics) of `resid` (and `pruned`) against resid's final row."""
    n, vocab, dtype, device = resid[0].shape[0], model.cfg.d_vocab, resid[0].dtype, resid[0].device
    # Preallocated (pos, vocab) buffers: a fresh tensor this size per operation would be page-faulted in
    # each time.
    buf = lambda dt=torch.float32: torch.empty(n, vocab, device=device, dtype=dt)
    logits, logp_f, p_f, logp, p, scratch = buf(dtype), buf(), buf(), buf(), buf(), buf()

    def log_probs(x, dest):
        from probes.studies.lens_readout import decode_residual

        decode_residual(model, x, out=logits)
        return torch.log_softmax(logits if dtype == torch.float32 else logits.float(), -1, out=dest)

    def dot(a, b):  # row-wise a . b, (pos, vocab) x2 -> (pos,), through torch's cascaded sum
        return torch.mul(a, b, out=scratch).sum(-1)

    log_probs(resid[-1], logp_f)  # every row is compared with the output row
    torch.exp(logp_f, out=p_f)
    final_top = logp_f.argmax(-1)  # (pos,)
    target = torch.where(known, nxt, 0)[:, None]  # (pos, 1)

    def row(lp):  # (pos, len(METRICS)) in METRICS order
        pr = torch.exp(lp, out=p)
        top = lp.argmax(-1)
        entropy = -dot(pr, lp) / LN2
        # KL(final || row) summed directly, not as a difference of two sums: no cancellation.
        kl = dot(p_f, torch.sub(logp_f, lp, out=p)) / LN2  # p is free once the entropy is summed
        xent = torch.where(known, -lp.gather(-1, target)[:, 0] / LN2, 0.0)
        hit = ((top == nxt) & known).float()
        values = {
            "kl_to_final": kl.clamp(min=0),
            "entropy": entropy,
            "next_xent": xent,
            "next_accuracy": hit,
            "final_agreement": (top == final_top).float(),
        }
        return torch.stack([values[m] for m in METRICS], -1)

    def run(rows):  # (rows, pos, metrics); a skipped block's row equals the row before: same numbers
        out = []
        for r, x in enumerate(rows):
            if r > 0 and torch.equal(x, rows[r - 1]):
                out.append(out[-1])
            else:
                out.append(row(logp_f if x is resid[-1] else log_probs(x, logp)))
        return torch.stack(out).double().cpu().numpy()

    return run(resid), (None if pruned is None else run(pruned))
