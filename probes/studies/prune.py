"""Pruning study: generate with blocks skipped, compare with the full model in numbers; rank blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from probes.core.generate import Sample, generate
from probes.core.sampling import SamplingConfig
from probes.studies.checks import check_eval_path, prune_config
from probes.errors import ProbesError
from probes.core.hooks import attached
from probes.core.layers import complement, format_layers, parse_layers
from probes.studies.metrics import (
    agreement_and_kl, continuation_nll, distinct_n, eval_logprobs, eval_loss, eval_windows, kl_per_token,
    logprobs, longest_repeated_span, perplexity, repeated_ngram_fraction,
)
from probes.core.skip import skip

METRIC_LABELS = {
    "distinct_1": "distinct-1", "distinct_2": "distinct-2", "distinct_3": "distinct-3",
    "repeated_4gram_fraction": "repeated 4-grams", "longest_repeated_span": "longest repeat (tokens)",
    "length_until_eos": "tokens until EOS", "ppl_under_full": "perplexity under full",
    "tf_kl": "KL(full||run) on full text", "tf_top1_agreement": "top-1 agreement",
    "eval_loss": "held-out loss (nats)", "eval_loss_increase": "loss increase", "eval_kl": "held-out KL",
    "eval_top1_agreement": "held-out top-1 agr.", "tokens_per_second": "tokens / s",
}


@dataclass
class PruneRun:
    """One generation run: the full model or one skip spec."""

    name: str
    skipped_blocks: list[int]
    kept_blocks: list[int]
    samples: list[Sample]
    metrics: dict
    kl_per_token: list[float] = field(default_factory=list)  # along the full model's first continuation

    def __repr__(self) -> str:
        loss = self.metrics.get("eval_loss")
        return f"PruneRun({self.name!r}, skipped {self.skipped_blocks}, eval loss {loss if loss is None else round(loss, 4)})"

    def as_dict(self) -> dict:
        return {"name": self.name, "skipped_blocks": self.skipped_blocks, "kept_blocks": self.kept_blocks,
                "samples": [{"text": s.text, "tokens": s.tokens} for s in self.samples],
                "metrics": self.metrics, "kl_per_token": self.kl_per_token}


@dataclass
class PruneComparison:
    """The full model first, then one run per skip spec, generated from the same prompt and seed."""

    prompt: str
    prompt_tokens: list[int]
    config: SamplingConfig
    eval_text: str
    runs: list[PruneRun]

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "config": self.config.to_dict(),
                "eval_text": self.eval_text, "runs": [r.as_dict() for r in self.runs]}

    def __repr__(self) -> str:
        return f"PruneComparison({', '.join(r.name for r in self.runs)}; {self.config.label()}, eval {self.eval_text!r})"

    def figure(self):
        from probes.plots.prune import comparison_figure

        return comparison_figure(self)


def default_eval_text(model) -> tuple[str, str]:
    """The model's own held-out passage if it ships one, else the bundled model's (plain Shakespeare text)."""
    from probes.core.load import BUNDLED_DIR, source_of

    for folder in (Path(source_of(model).path), BUNDLED_DIR):
        path = folder / "heldout.txt"
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
    raise ProbesError("no held-out text found; pass one with --eval-text FILE")


def read_eval_text(model, eval_text: str | None) -> tuple[str, str]:
    """(text, where it came from): `eval_text`'s contents, or the default held-out text."""
    p = check_eval_path(eval_text)
    if p is None:
        return default_eval_text(model)
    text = p.read_text(encoding="utf-8")
    if len(model.tokenizer(text, add_special_tokens=False)["input_ids"]) < 2:
        raise ProbesError(f"--eval-text {str(p)!r} is empty or too short (needs at least 2 tokens)")
    return text, str(p)


def _window(ids: list[int], start: int, n_ctx: int) -> tuple[list[int], int]:
    """Crop a sequence to the context from the left, moving the continuation start with it."""
    if len(ids) <= n_ctx:
        return ids, start
    cut = len(ids) - n_ctx
    return ids[cut:], max(1, start - cut)


def _text_metrics(tokens: list[int], eos: int | None) -> dict:
    until = tokens.index(eos) if eos is not None and eos in tokens else None
    return {
        "distinct_1": distinct_n(tokens, 1), "distinct_2": distinct_n(tokens, 2), "distinct_3": distinct_n(tokens, 3),
        "repeated_4gram_fraction": repeated_ngram_fraction(tokens, 4),
        "longest_repeated_span": longest_repeated_span(tokens), "length_until_eos": until,
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
    eval_text: str | None = None,
    progress=None,
    **overrides,
) -> PruneComparison:
    """Generate from `prompt` with the full model, then with each skip spec, and measure the change.

    `config` (or its fields as keywords) is PRUNE_SAMPLING by default: greedy, 50 tokens, so runs
    are directly comparable; with greedy=False every run samples with the same seed. Metrics: distinct-1/2/3, repeated 4-grams, longest repeated span, tokens until EOS,
    perplexity under the full model; teacher-forced on the full model's continuation, mean
    KL(full || run) and top-1 agreement; loss on a held-out text.
    """
    cfg = prune_config(config, **overrides)
    n = len(model.blocks)
    specs = [(str(s), parse_layers(s, n)) for s in skips]  # every spec is checked before any work
    text_eval, eval_src = read_eval_text(model, eval_text)
    windows = eval_windows(model, text_eval)
    eos = model.tokenizer.eos_token_id
    n_ctx = model.cfg.n_ctx
    say = progress or (lambda msg: None)

    say("full model: generating")
    full_samples = generate(model, prompt, cfg)
    prompt_ids = full_samples.prompt_tokens
    P = len(prompt_ids)
    full_eval = eval_logprobs(model, windows)
    base_loss = eval_loss(full_eval, windows)
    # Full-model log-probs along each full continuation: the teacher-forced reference.
    full_tf = [(_window(prompt_ids + s.tokens, P, n_ctx)) for s in full_samples]
    full_tf_lp = [logprobs(model, ids) for ids, _ in full_tf]

    runs = []
    for name, layers in [("full", [])] + specs:
        with skip(model, layers):
            if layers:
                say(f"skip {name} ({format_layers(layers)}): generating")
                samples = generate(model, prompt, cfg)
                lps = eval_logprobs(model, windows)
                tf_lp = [logprobs(model, ids) for ids, _ in full_tf]
            else:
                samples, lps, tf_lp = full_samples, full_eval, full_tf_lp
        per_sample = [_text_metrics(s.tokens, eos) for s in samples]
        metrics = {k: _mean([m[k] for m in per_sample]) for k in per_sample[0]}
        ppls, kls, agrees, kl_curve = [], [], [], []
        for j, s in enumerate(samples):
            ids, start = _window(prompt_ids + s.tokens, P, n_ctx)
            # Outside the skip context again: this is the full model scoring the run's text.
            lp_full_here = full_tf_lp[j] if not layers else logprobs(model, ids)
            ppls.append(perplexity(continuation_nll(lp_full_here, ids, start)))
            (fids, fstart), a, b = full_tf[j], full_tf_lp[j], tf_lp[j]
            kl = kl_per_token(a[fstart - 1 : len(fids) - 1], b[fstart - 1 : len(fids) - 1])
            agree = (a[fstart - 1 : len(fids) - 1].argmax(-1) == b[fstart - 1 : len(fids) - 1].argmax(-1)).float()
            kls.append(float(kl.mean()))
            agrees.append(float(agree.mean()))
            if j == 0:
                kl_curve = [float(x) for x in kl]
        eval_kl, eval_agree = agreement_and_kl(full_eval, lps)
        loss = eval_loss(lps, windows)
        metrics.update({
            "ppl_under_full": _mean(ppls), "tf_kl": _mean(kls), "tf_top1_agreement": _mean(agrees),
            "eval_loss": loss, "eval_loss_increase": loss - base_loss, "eval_kl": eval_kl,
            "eval_top1_agreement": eval_agree, "tokens_per_second": samples.timing["tokens_per_second"],
        })
        runs.append(PruneRun(name, layers, complement(layers, n), list(samples), metrics, kl_curve))
    return PruneComparison(full_samples.prompt, prompt_ids, cfg, eval_src, runs)


@dataclass
class BlockSweep:
    """Per-block importance on a held-out text, and a table of named skip strategies."""

    base_loss: float
    blocks: list[dict]
    strategies: list[dict]
    eval_text: str

    def __repr__(self) -> str:
        order = ", ".join(str(b["block"]) for b in self.ranked())
        return f"BlockSweep({len(self.blocks)} blocks, base loss {self.base_loss:.4f}; most important first: {order})"

    def ranked(self, key: str = "loss_increase") -> list[dict]:
        return sorted(self.blocks, key=lambda b: -b[key])

    def as_dict(self) -> dict:
        return {"base_loss": self.base_loss, "eval_text": self.eval_text, "blocks": self.blocks,
                "ranking_by_loss_increase": [b["block"] for b in self.ranked()], "strategies": self.strategies}

    def figure(self):
        from probes.plots.prune import sweep_figure

        return sweep_figure(self)


def sweep_blocks(model, *, eval_text: str | None = None, progress=None) -> BlockSweep:
    """Skip each block alone: loss increase on held-out text, Block Influence and angular distance.

    Block Influence (ShortGPT) is 1 - cos(input, output) of the block, and the angular distance
    (Gromov et al.) is arccos(cos) / pi, both averaged over tokens (BOS excluded) of the full
    model's residual stream. The strategy table skips odd, even, first-half, last-half and the
    n/2 lowest-influence blocks.
    """
    n = len(model.blocks)
    text, src = read_eval_text(model, eval_text)
    windows = eval_windows(model, text)
    say = progress or (lambda msg: None)
    cos_sum = torch.zeros(n, dtype=torch.float64)
    ang_sum = torch.zeros(n, dtype=torch.float64)
    count = 0
    stash: dict[str, torch.Tensor] = {}

    def keep(t, hook):
        stash[hook.name] = t[0, 1:].detach().float().cpu()  # (pos-1, d_model), BOS excluded

    hooks = [(f"blocks.{i}.hook_resid_{w}", keep) for i in range(n) for w in ("pre", "post")]
    full_lps = []
    say("full model on the held-out text")
    with attached(model, hooks):
        for w in windows:
            full_lps.append(logprobs(model, w))
            for i in range(n):
                cos = torch.cosine_similarity(stash[f"blocks.{i}.hook_resid_pre"], stash[f"blocks.{i}.hook_resid_post"], dim=-1)
                cos_sum[i] += cos.double().sum()
                ang_sum[i] += (torch.arccos(cos.double().clamp(-1, 1)) / math.pi).sum()
            count += len(w) - 1
    base = eval_loss(full_lps, windows)
    blocks = []
    for i in range(n):
        say(f"skip block {i}")
        with skip(model, [i]):
            lps = eval_logprobs(model, windows)
        kl, agree = agreement_and_kl(full_lps, lps)
        loss = eval_loss(lps, windows)
        blocks.append({"block": i, "loss": loss, "loss_increase": loss - base, "kl": kl, "top1_agreement": agree,
                       "block_influence": float(1 - cos_sum[i] / count), "angular_distance": float(ang_sum[i] / count)})
    for rank, b in enumerate(sorted(blocks, key=lambda b: -b["loss_increase"]), 1):
        b["rank"] = rank
    lowest = sorted(range(n), key=lambda i: blocks[i]["block_influence"])[: n // 2]
    named = [(s, parse_layers(s, n)) for s in ("odd", "even", "first-half", "last-half")]
    named.append((f"lowest-influence-{n // 2}", sorted(lowest)))
    strategies = []
    for name, layers in named:
        say(f"strategy {name}")
        with skip(model, layers):
            lps = eval_logprobs(model, windows)
        kl, agree = agreement_and_kl(full_lps, lps)
        loss = eval_loss(lps, windows)
        strategies.append({"name": name, "skipped_blocks": layers, "loss": loss, "loss_increase": loss - base,
                           "kl": kl, "top1_agreement": agree})
    return BlockSweep(base, blocks, strategies, src)
