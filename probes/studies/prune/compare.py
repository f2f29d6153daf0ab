"""Pruning study: generate with blocks skipped, compare with the full model in numbers; rank blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from probes.core import stats
from probes.core.generate import Sample, generate_runs
from probes.core.layers import complement, parse_layers
from probes.core.prompt import is_many, per_prompt, prompt_ids, token_strings
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError
from probes.numbers import count
from probes.progress import progress_of
from probes.studies.prune.heldout import heldout_source, score_runs
from probes.studies.prune.metrics import (
    continuation_nll,
    distinct_n,
    logprobs_many,
    longest_repeated_span,
    perplexity,
    repeated_ngram_fraction,
)
from probes.studies.settings import prune_config

METRIC_LABELS = {
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "distinct_3": "distinct-3",
    "repeated_4gram_fraction": "repeated 4-grams",
    "longest_repeated_span": "longest repeat (tokens)",
    "length_until_eos": "tokens until EOS",
    "ppl_under_full": "perplexity under full",
    "tf_kl": "KL(full||run) on full text (nats)",
    "tf_top1_agreement": "top-1 agreement",
    "eval_loss": "held-out loss (nats)",
    "eval_loss_increase": "loss change",
    "eval_kl": "held-out KL (nats)",
    "eval_top1_agreement": "held-out top-1 agr.",
}
EVAL_KEYS = ("eval_loss", "eval_loss_increase", "eval_kl", "eval_top1_agreement")
# Generation speed from one cold run is no measurement (the same skip set has shown 242 and 25
# tokens/s in two runs), so it stays out of every table and goes into JSON marked as such.
ONE_RUN = "one cold run, not warmed up or repeated: not a speed measurement (see benchmarks/)"


@dataclass
class PruneRun:
    """One generation run: the full model or one skip spec."""

    name: str
    skipped_blocks: list[int]
    kept_blocks: list[int]
    samples: list[Sample]
    metrics: dict
    kl_per_token: list[float] = field(default_factory=list)  # along the full model's first continuation
    timing: dict = field(default_factory=dict)  # of this run's generation: one run, see ONE_RUN
    str_tokens: list[list[str]] = field(default_factory=list)  # each sample's tokens as strings
    # Along the full model's first continuation too: does this run's top-1 equal the full model's?
    top1_agreement_per_token: list[bool] = field(default_factory=list)

    def __repr__(self) -> str:
        loss = self.metrics.get("eval_loss")
        return (
            f"PruneRun({self.name!r}, skipped {self.skipped_blocks}, eval loss "
            f"{loss if loss is None else round(loss, 4)})"
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "skipped_blocks": self.skipped_blocks,
            "kept_blocks": self.kept_blocks,
            "samples": [
                {"text": s.text, "tokens": s.tokens, **({"str_tokens": t} if t is not None else {})}
                for s, t in zip(self.samples, self.str_tokens or [None] * len(self.samples))
            ],
            "metrics": self.metrics,
            "kl_per_token": self.kl_per_token,
            "top1_agreement_per_token": self.top1_agreement_per_token,
            "timing": self.timing,
        }


@dataclass
class PruneComparison:
    """The full model first, then one run per skip spec, generated from the same prompt and seed."""

    prompt: str
    prompt_tokens: list[int]
    config: SamplingConfig
    eval_text: str | None  # what the held-out metrics were scored on; None: not scored (evaluate=False)
    runs: list[PruneRun]
    eval_tokens: int | None = None  # held-out tokens predicted (after each window's BOS)
    eval_texts: int | None = None  # held-out texts scored (1 for a file)

    def as_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "config": self.config.to_dict(),
            "eval_text": self.eval_text,
            "eval_texts": self.eval_texts,
            "eval_tokens": self.eval_tokens,
            "runs": [r.as_dict() for r in self.runs],
        }

    def __repr__(self) -> str:
        return (
            f"PruneComparison({', '.join(r.name for r in self.runs)}; {self.config.label()}, eval "
            f"{self.eval_text!r})"
        )

    def figure(self):
        from probes.plots.prune import comparison_figure

        return comparison_figure(self)

    def to_dataframe(self):
        """A pandas DataFrame, one row per run (the full model first): its skipped blocks, its first
        sample's text, and every metric (`METRIC_LABELS`). Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = [
            {
                "run": r.name,
                "skipped_blocks": list(r.skipped_blocks),
                "text": r.samples[0].text if r.samples else None,
                **{k: r.metrics.get(k) for k in METRIC_LABELS},
            }
            for r in self.runs
        ]
        return frame(rows)

    def to_html(self, path, *, force: bool = False):
        """Write the interactive view: the full and pruned continuations aligned token by token, each token
        coloured by KL(full || run) on the full continuation's prefix, the first divergence marked; one
        self-contained HTML file (no network). Returns the path written; an existing file is replaced only
        with `force`."""
        from probes.views.page import check_html_path, write_page
        from probes.views.prune import prune_page

        check_html_path(path, force=force, param="path")
        return write_page(path, prune_page(self), force=force)

    def _repr_html_(self) -> str:
        """The interactive view in a notebook cell (a sandboxed iframe)."""
        from probes.views.prune import prune_frame

        return prune_frame(self)


def _window(ids: list[int], start: int, n_ctx: int) -> tuple[list[int], int]:
    """Crop a sequence to the context from the left, moving the continuation start with it."""
    if len(ids) <= n_ctx:
        return ids, start
    cut = len(ids) - n_ctx
    return ids[cut:], max(1, start - cut)


def _text_metrics(tokens: list[int], eos: int | None) -> dict:
    until = tokens.index(eos) if eos is not None and eos in tokens else None
    return {
        "distinct_1": distinct_n(tokens, 1),
        "distinct_2": distinct_n(tokens, 2),
        "distinct_3": distinct_n(tokens, 3),
        "repeated_4gram_fraction": repeated_ngram_fraction(tokens, 4),
        "longest_repeated_span": longest_repeated_span(tokens),
        "length_until_eos": until,
    }


def _mean(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def compare_pruned(
    model,
    prompt,
    skips: list,
    config: SamplingConfig | None = None,
    *,
    eval_text=None,
    evaluate: bool = True,
    progress=None,
    memo: dict | None = None,
    samples: list | None = None,
    **overrides,
) -> PruneComparison | list[PruneComparison]:
    """Generate from `prompt` with the full model, then with each skip spec, and measure the change.

    A list of prompts or a `probes.Dataset` gives a list, one PruneComparison per prompt in order;
    the held-out scoring, the same for every prompt, runs once.

    `config` (or its fields as keywords) is PRUNE_SAMPLING by default: greedy, 50 tokens, so runs
    are directly comparable; with greedy=False every run samples with the same seed. Metrics:
    distinct-1/2/3, repeated 4-grams, longest repeated span, tokens until EOS, perplexity under the
    full model; teacher-forced on the full model's continuation, mean KL(full || run) and top-1
    agreement; on held-out text (`eval_text`: a file, a `probes.Dataset`, or None for the model's
    default), loss, loss increase, KL and top-1 agreement, scored in batches
    (`probes.studies.prune.heldout`; `memo` reuses runs already scored, see `score_runs`). `evaluate=False`
    skips the held-out scoring (those metrics are None).
    `samples`: the runs' Samples when they were decoded already (the full model's first, then one
    per skip spec, of this prompt and config, as `probes.core.generate.generate_runs` gives them,
    perhaps in one batch with other work); otherwise they are decoded here.
    Each run's `timing` is one cold run, not a measured speed.
    """
    cfg = prune_config(config, **overrides)
    n = len(model.blocks)
    specs = [(str(s), parse_layers(s, n)) for s in skips]  # every spec is checked before any work
    source = heldout_source(model, eval_text) if evaluate else None
    if is_many(prompt):
        memo = {} if memo is None else memo
        return per_prompt(
            lambda one: compare_pruned(
                model, one, skips, cfg, eval_text=source, evaluate=evaluate, progress=progress, memo=memo
            ),
            model,
            prompt,
            bos=cfg.bos,
        )
    eos = model.tokenizer.eos_token_id
    n_ctx = model.cfg.n_ctx
    p = progress_of(progress)

    if samples is None:
        p.note(f"generating: full model and {count(len(specs), 'skip run')}")
        sets = [[]] + [layers for _, layers in specs]
        generated = generate_runs(model, [(prompt, cfg, layers) for layers in sets])  # one batch
    else:
        generated = _given_samples(model, prompt, cfg, samples, len(specs))
    full_samples = generated[0]
    prompt_tokens = full_samples.prompt_tokens
    P = len(prompt_tokens)
    # Every forward the metrics need, in one batch where the engine allows: the full model along
    # each full continuation (the teacher-forced reference); each skip run along them too; and the
    # full model along each run's own continuations (its perplexity under the full model).
    full_tf = [(_window(prompt_tokens + s.tokens, P, n_ctx)) for s in full_samples]
    own = [[_window(prompt_tokens + s.tokens, P, n_ctx) for s in samples] for samples in generated[1:]]
    items = [(ids, []) for ids, _ in full_tf]
    for (_, layers), texts in zip(specs, own):
        items += [(ids, layers) for ids, _ in full_tf] + [(ids, []) for ids, _ in texts]
    lps = iter(logprobs_many(model, items))
    full_tf_lp = [next(lps) for _ in full_tf]

    runs = []
    for k, ((name, layers), samples) in enumerate(zip([("full", [])] + specs, generated)):
        tf_lp = [next(lps) for _ in full_tf] if k else full_tf_lp
        own_lp = [next(lps) for _ in samples] if k else full_tf_lp
        per_sample = [_text_metrics(s.tokens, eos) for s in samples]
        metrics = {k: _mean([m[k] for m in per_sample]) for k in per_sample[0]}
        ppls, kls, agrees, kl_curve, agree_curve = [], [], [], [], []
        for j, s in enumerate(samples):
            ids, start = _window(prompt_tokens + s.tokens, P, n_ctx)
            ppls.append(
                perplexity(continuation_nll(own_lp[j], ids, start))
            )  # the full model scoring the run's text
            (fids, fstart), a, b = full_tf[j], full_tf_lp[j], tf_lp[j]
            kl = stats.kl(a[fstart - 1 : len(fids) - 1], b[fstart - 1 : len(fids) - 1])
            # float64: a fraction of counts reads 0.35 in JSON, not float32's 0.3499999940395355
            agree = (
                a[fstart - 1 : len(fids) - 1].argmax(-1) == b[fstart - 1 : len(fids) - 1].argmax(-1)
            ).double()
            kls.append(float(kl.mean()))
            agrees.append(float(agree.mean()))
            if j == 0:
                kl_curve = [float(x) for x in kl]
                agree_curve = [bool(x) for x in agree]
        metrics.update(
            {"ppl_under_full": _mean(ppls), "tf_kl": _mean(kls), "tf_top1_agreement": _mean(agrees)}
        )
        timing = {**samples.timing, "runs": 1, "note": ONE_RUN}
        strings = [token_strings(model.tokenizer, s.tokens) for s in samples]
        runs.append(
            PruneRun(
                name,
                layers,
                complement(layers, n),
                list(samples),
                metrics,
                kl_curve,
                timing,
                strings,
                agree_curve,
            )
        )
    eval_tokens = None
    if source is not None:
        p.note(
            f"held-out scoring on {source.name}: full model and {count(len(specs), 'skip run')}, in batches"
        )
        scores = score_runs(model, source, [layers for _, layers in specs], progress=p, memo=memo)
        eval_tokens = scores[0].targets
        for run, score in zip(runs, scores):
            run.metrics.update({f"eval_{k}": v for k, v in score.metrics(scores[0]).items()})
    else:
        for run in runs:
            run.metrics.update(dict.fromkeys(EVAL_KEYS))
    return PruneComparison(
        full_samples.prompt,
        prompt_tokens,
        cfg,
        source.name if source else None,
        runs,
        eval_tokens,
        scores[0].texts if source else None,  # a stream's length is known once it has been read
    )


def _given_samples(model, prompt, cfg: SamplingConfig, samples: list, n_specs: int) -> list:
    """`samples` checked against what compare_pruned would decode: one Samples per run, of this prompt and
    config."""
    ids = prompt_ids(model, prompt, bos=cfg.bos)[1]
    if len(samples) != n_specs + 1:
        raise ProbesError(
            f"samples: give {n_specs + 1} runs' Samples (the full model's, then one per skip spec), got "
            f"{len(samples)}"
        )
    for s in samples:
        if s.prompt_tokens != ids or s.config != cfg:
            raise ProbesError(
                f"samples: {s!r} was not decoded from this prompt with this config ({cfg.label()})"
            )
    return samples


@dataclass
class BlockSweep:
    """Per-block importance on a held-out text, and a table of named skip strategies."""

    base_loss: float
    blocks: list[dict]
    strategies: list[dict]
    eval_text: str
    eval_tokens: int | None = None  # held-out tokens predicted (after each window's BOS)
    eval_texts: int | None = None  # held-out texts scored (1 for a file)

    def __repr__(self) -> str:
        order = ", ".join(str(b["block"]) for b in self.ranked())
        return (
            f"BlockSweep({len(self.blocks)} blocks, base loss {self.base_loss:.4f}; most important first: "
            f"{order})"
        )

    def ranked(self, key: str = "loss_increase") -> list[dict]:
        return sorted(self.blocks, key=lambda b: -b[key])

    def as_dict(self) -> dict:
        return {
            "base_loss": self.base_loss,
            "eval_text": self.eval_text,
            "eval_texts": self.eval_texts,
            "eval_tokens": self.eval_tokens,
            "blocks": self.blocks,
            "ranking_by_loss_increase": [b["block"] for b in self.ranked()],
            "strategies": self.strategies,
        }

    def to_dataframe(self):
        """A pandas DataFrame, one row per block skipped alone: loss, loss increase, KL, top-1 agreement,
        Block Influence, angular distance and rank. `strategies` holds the named skip sets. Needs pandas
        (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        return frame([dict(b) for b in self.blocks])

    def figure(self):
        from probes.plots.prune import sweep_figure

        return sweep_figure(self)


def sweep_blocks(model, *, eval_text=None, progress=None, memo: dict | None = None) -> BlockSweep:
    """Skip each block alone: loss increase on held-out text, Block Influence and angular distance.

    Block Influence (ShortGPT) is 1 - cos(input, output) of the block, and the angular distance
    (Gromov et al.) is arccos(cos) / pi, both averaged over tokens (BOS excluded) of the full
    model's residual stream. The strategy table skips odd, even, first-half, last-half and the
    n/2 lowest-influence blocks. Each batch of the held-out text (`eval_text`: a file, a
    `probes.Dataset`, or None for the model's default) runs the full model once and every skip
    set on it; the lowest-influence set, known once the full model has seen the whole text, is
    scored in the same pass when the text is one batch, and takes a second pass otherwise.
    """
    n = len(model.blocks)
    source = heldout_source(model, eval_text)
    p = progress_of(progress)
    cos_sum = torch.zeros(n, dtype=torch.float64)
    ang_sum = torch.zeros(n, dtype=torch.float64)
    tokens = [0]

    def influence(
        batch, resid
    ):  # resid[i] (batch, pos, d_model): the stream before block i; resid[n]: after all
        keep = batch.mask.clone()  # (batch, pos)
        keep[:, 0] = False  # BOS excluded
        tokens[0] += int(keep.sum())
        for i in range(n):
            cos = torch.cosine_similarity(
                resid[i][keep].double(), resid[i + 1][keep].double(), dim=-1
            )  # (tokens,)
            cos_sum[i] += cos.sum().cpu()
            ang_sum[i] += (torch.arccos(cos.clamp(-1, 1)) / math.pi).sum().cpu()

    named = [(s, parse_layers(s, n)) for s in ("odd", "even", "first-half", "last-half")]
    sets = _unique([[i] for i in range(n)] + [layers for _, layers in named])

    def lowest() -> list[
        int
    ]:  # the n/2 blocks of least influence, known once the full model has seen the text
        return sorted(sorted(range(n), key=lambda i: float(1 - cos_sum[i] / tokens[0]))[: n // 2])

    p.note(
        f"block sweep on {source.name}: full model, {n} single-block skips, {len(named)} strategies and "
        f"the {n // 2} lowest-influence blocks"
    )
    full, *rest, low = score_runs(
        model, source, sets, on_full_stream=influence, progress=p, memo=memo, chosen_after=lowest
    )
    scored = dict(zip(map(tuple, sets), rest))
    count = full.targets  # the positions after BOS, where Block Influence was averaged
    blocks = []
    for i in range(n):
        blocks.append(
            {
                "block": i,
                **scored[(i,)].metrics(full),
                "block_influence": float(1 - cos_sum[i] / count),
                "angular_distance": float(ang_sum[i] / count),
            }
        )
    for rank, b in enumerate(sorted(blocks, key=lambda b: -b["loss_increase"]), 1):
        b["rank"] = rank
    named.append((f"lowest-influence-{n // 2}", lowest()))
    scored[tuple(named[-1][1])] = low
    strategies = [
        {"name": name, "skipped_blocks": layers, **scored[tuple(layers)].metrics(full)}
        for name, layers in named
    ]
    return BlockSweep(full.loss, blocks, strategies, source.name, full.targets, len(source.dataset))


def _unique(sets: list[list[int]]) -> list[list[int]]:
    """Each skip set once, in first-seen order (on few blocks, 'odd' may be a single block)."""
    seen: dict[tuple, list[int]] = {}
    for layers in sets:
        seen.setdefault(tuple(layers), layers)
    return list(seen.values())
