"""Held-out scoring: loss, KL(full || run) and top-1 agreement of skip sets, streamed over a text's or a
dataset's windows.

    src = heldout_source(model)                          # or eval_text="notes.txt", or a Dataset
    full, odd = score_runs(model, src, [[1, 3, 5]])      # the model as it is, then each skip set
    odd.loss, odd.metrics(full)                          # loss, loss_increase, kl, top1_agreement

Each batch of windows runs the model as it is once, then every skip set under `probes.skip` on the
same batch, and only per-run sums survive the batch: memory holds one batch's log-probs (rows x
pos x vocab, a few of them) whatever the size of the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from probes.core import distributed, stats
from probes.core.dataset import Dataset
from probes.core.shares import share_of, split
from probes.core.windows import Batch, Window, batches, windows
from probes.errors import ProbesError
from probes.progress import progress_of
from probes.studies.defaults import EVAL_MAX_TOKENS, defaults_for_model

LOGITS_BUDGET = 1 << 25  # floats in one (rows, pos, vocab) tensor of a batch: 128 MiB in float32


@dataclass(frozen=True)
class HeldOut:
    """What a study scores on: a dataset (one text or many), its name, and a cap on each text's tokens."""

    dataset: Dataset
    name: str
    max_tokens_per_text: int | None = None

    def windows(self, model, *, share: bool = False) -> Iterator[Window]:
        """Every window of the source; with `share`, a stream under torchrun gives this rank's texts' only."""
        mine = share_of(self.dataset) if share else None
        texts = mine.texts() if mine else self.dataset
        return windows(model, texts, max_tokens_per_text=self.max_tokens_per_text)

    def shared(self) -> bool:
        """Whether each rank reads texts of its own (`core/shares.py`) rather than every text."""
        return split(self.dataset)

    def as_dict(self) -> dict:
        return {
            "source": self.name,
            "texts": self.dataset._count,
            "max_tokens_per_text": self.max_tokens_per_text,
        }


def heldout_source(model, eval_text=None) -> HeldOut:
    """`eval_text` as a HeldOut: a Dataset (scored whole), a text file (its first EVAL_MAX_TOKENS tokens), or
    None for the model's default (`probes.studies.defaults`). A HeldOut is returned as it is."""
    if isinstance(eval_text, HeldOut):
        return eval_text
    if isinstance(eval_text, Dataset):
        eval_text.check()
        return HeldOut(eval_text, eval_text.name)
    if eval_text is None:
        path = defaults_for_model(model).eval_path
    else:
        from probes.studies.settings import check_eval_path

        path = check_eval_path(eval_text)
    text = Path(path).read_text(encoding="utf-8")
    if len(model.tokenizer(text, add_special_tokens=False)["input_ids"]) < 2:
        raise ProbesError(f"eval_text={str(path)!r} is empty or too short (needs at least 2 tokens)")
    data = Dataset([text])
    data.check()
    return HeldOut(data, str(path), EVAL_MAX_TOKENS)


@dataclass
class Score:
    """Sums for one run: next-token NLL over targets; KL(full || run) and top-1 agreement over every
    position."""

    nll: float = 0.0
    targets: int = 0
    kl: float = 0.0
    agree: float = 0.0
    positions: int = 0
    texts: int = 0  # texts whose windows were scored

    @property
    def loss(self) -> float:
        """Mean cross-entropy, nats per token."""
        return self.nll / self.targets

    def metrics(self, full: Score) -> dict:
        return {
            "loss": self.loss,
            "loss_increase": self.loss - full.loss,
            "kl": self.kl / self.positions,
            "top1_agreement": self.agree / self.positions,
        }


def _summed(scores: list[Score]) -> list[Score]:
    """Each score's sums added over the ranks (the same scores in one process)."""
    import numpy as np

    if distributed.size() == 1:
        return scores
    names = ("nll", "targets", "kl", "agree", "positions", "texts")
    counts = ("targets", "positions", "texts")
    table = np.array([[getattr(s, f) for f in names] for s in scores], np.float64)
    table = distributed.all_sum(table, "adding up the held-out scores")
    return [Score(**{f: (int(v) if f in counts else float(v)) for f, v in zip(names, row)}) for row in table]


def batch_tokens(model) -> int:
    """Padded tokens per batch: LOGITS_BUDGET / vocab (one full window at least)."""
    return max(model.cfg.n_ctx, LOGITS_BUDGET // model.cfg.d_vocab)


def score_runs(
    model,
    source: HeldOut,
    runs: list[list[int]],
    *,
    on_full_stream: Callable[[Batch, list[torch.Tensor]], None] | None = None,
    max_tokens: int | None = None,
    max_rows: int = 64,
    progress=None,
    memo: dict | None = None,
    chosen_after: Callable[[], list[int]] | None = None,
) -> list[Score]:
    """Scores of the model as it is, then of each skip set in `runs`, over every window of `source`.

    `memo`, a dict a caller keeps for one model and source, returns runs scored before without
    scoring them again (the report's prune comparison reuses the block sweep's runs); it is
    filled with what is scored here. With `on_full_stream` every batch is run (the callback needs it).

    Targets are each window's tokens after its first (BOS); KL and agreement count every real
    position, so the full model scores KL 0 and agreement 1. `on_full_stream(batch, resid)` sees the
    full model's residual stream on each batch: resid[i] (batch, pos, d_model) before block i,
    resid[n_layers] after the last. `max_tokens` padded tokens per batch (default
    `batch_tokens(model)`); batch size does not change the scores.

    `chosen_after()`, a skip set that depends on what `on_full_stream` saw of the whole text (the sweep's
    lowest-influence blocks), is asked for once the full model has run on every batch; its score is
    appended to the list. When the text is one batch that is before the batch's skip runs, so it is
    scored in the same pass; otherwise a second pass scores it.

    The runner (`probes.core.runner`) computes: a skip run resumes the full model's stream at its
    first skipped block where it can, instead of recomputing the blocks before it; with probes
    attached every forward goes through the hooked bridge, so they see it.
    """
    from probes.core.runner import runner_for
    from probes.core.skip import skipped_blocks

    base = set(skipped_blocks(model))  # blocks the caller already skips: every run skips them too
    keys = [
        (source.name, source.max_tokens_per_text, tuple(sorted(base | set(r or ())))) for r in [None, *runs]
    ]
    if memo is not None and on_full_stream is None and chosen_after is None and all(k in memo for k in keys):
        return [memo[k] for k in keys]
    runner = runner_for(model)
    scores = [Score() for _ in range(len(runs) + 1)]
    p = progress_of(progress)

    runs = list(runs)
    size = max_tokens or batch_tokens(model)
    # Under torchrun each rank scores its share of the batches (of a stream: of its own texts), and the sums
    # are added up. A sweep's callbacks need to see every batch of the full model, so there each rank
    # computes everything.
    split = on_full_stream is None and chosen_after is None
    shared = split and source.shared()
    todo = batches(model, source.windows(model, share=shared), max_tokens=size, max_rows=max_rows)
    todo = iter(distributed.mine(todo) if split and not shared else todo)
    batch, first, copy_of = next(todo, None), True, 0
    with p.task(
        f"held-out scoring ({len(runs) + 1 + (chosen_after is not None)} runs)", unit="windows"
    ) as task:
        while batch is not None:
            following = next(todo, None)
            mask = batch.mask  # (batch, pos)
            targets = batch.ids[:, 1:]  # (batch, pos-1): position t predicts token t+1
            has_target = mask[:, 1:]  # (batch, pos-1)
            resid = runner.streams(batch.ids)  # L+1 of (batch, pos, d_model)
            lp_full = runner.logprobs(resid[-1])  # (batch, pos, vocab)
            if on_full_stream is not None:
                on_full_stream(batch, resid)
            if (
                chosen_after is not None and first and following is None
            ):  # one batch: the full model has seen the whole text
                runs.append(chosen_after())
                scores.append(Score())
                chosen_after = None
                if runs[-1] in runs[:-1]:  # already scored in this pass: the same numbers
                    copy_of = runs.index(runs[-1]) + 1
            top_full = lp_full.argmax(-1)  # (batch, pos)
            p_full = lp_full.exp()
            n_pos = int(mask.sum())
            for k, layers in enumerate([None, *runs]):
                if k == len(runs) and copy_of:
                    continue
                extra = sorted(set(layers) - base) if layers is not None else []
                if not extra:
                    lp = lp_full  # skips nothing the model does not already skip
                else:
                    lp = runner.logprobs(runner.resume(batch.ids, resid, extra))
                s = scores[k]
                nll = -lp[:, :-1].gather(-1, targets[..., None])[..., 0]  # (batch, pos-1)
                s.nll += float(nll[has_target].double().sum())
                s.targets += int(has_target.sum())
                s.positions += n_pos
                s.texts += sum(w.start == 0 for w in batch.windows)
                if lp is lp_full:
                    s.agree += n_pos  # KL(full || full) is 0
                    continue
                kl = stats.kl(lp_full, lp, p_full)  # (batch, pos), nats
                s.kl += float(kl[mask].double().sum())
                s.agree += int((lp.argmax(-1) == top_full)[mask].sum())
            del resid
            task.advance(len(batch.windows))
            batch, first = following, False
    if split:
        scores = _summed(scores)
    if scores[0].targets == 0:
        raise ProbesError(f"the held-out text {source.name} has no token to predict after BOS")
    if copy_of:
        scores[-1] = scores[copy_of]
    keys += [
        (source.name, source.max_tokens_per_text, tuple(sorted(base | set(r)))) for r in runs[len(keys) - 1 :]
    ]
    if memo is not None:
        memo.update(zip(keys, scores))
    if chosen_after is not None:  # several batches: the set is known only now, and takes a second pass
        wanted = chosen_after()
        scores.append(
            scores[runs.index(wanted) + 1]
            if wanted in runs
            else score_runs(
                model, source, [wanted], max_tokens=max_tokens, max_rows=max_rows, progress=p, memo=memo
            )[1]
        )
    return scores
