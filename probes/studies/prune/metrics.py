"""Text and distribution metrics: distinct-n, repetition, perplexity, per-token KL (held-out scoring:
heldout.py)."""

from __future__ import annotations

import math

import torch


def distinct_n(tokens: list[int], n: int) -> float:
    """Distinct n-grams / all n-grams (1.0: nothing repeats); NaN when the text is shorter than n."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def repeated_ngram_fraction(tokens: list[int], n: int = 4) -> float:
    """Fraction of n-grams that already occurred earlier in the text."""
    seen, repeats, grams = set(), 0, 0
    for i in range(len(tokens) - n + 1):
        g = tuple(tokens[i : i + n])
        grams += 1
        repeats += g in seen
        seen.add(g)
    return repeats / grams if grams else float("nan")


def longest_repeated_span(tokens: list[int]) -> int:
    """Length in tokens of the longest span that occurs at least twice (occurrences may overlap)."""
    best = 0
    n = len(tokens)
    # Longest common prefix of every pair of suffixes, by dynamic programming over shifts.
    for shift in range(1, n):
        run = 0
        for i in range(n - shift):
            run = run + 1 if tokens[i] == tokens[i + shift] else 0
            best = max(best, run)
    return best


def logprobs_many(model, items: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
    """Log-probabilities (pos, vocab), float32 on CPU, of each (ids, skip set) item: the model inside
    `probes.skip(model, skip set)` reading ids.

    The texts run as one right-padded batch (causal attention makes the padding exact), and the
    items of a skip set resume the full model's stream at its first skipped block where the runner
    can (`Runner.resume`).
    """
    from probes.core.runner import runner_for

    if not items:
        return []
    runner = runner_for(model)
    texts = list(dict.fromkeys(tuple(ids) for ids, _ in items))  # each text once
    row = {t: r for r, t in enumerate(texts)}
    T = max(map(len, texts))
    device = model.cfg.device or "cpu"
    batch = torch.tensor([list(t) + [0] * (T - len(t)) for t in texts], device=device)  # (texts, pos)
    extra = [tuple(sorted(set(layers) - set(runner.skipped))) for _, layers in items]
    streams = runner.streams(batch) if any(extra) else None
    by_set: dict[tuple, torch.Tensor] = {(): streams[-1] if streams else runner.final(batch)}
    out = []
    for (ids, _), skips in zip(items, extra):
        if skips not in by_set:  # final residual (texts, pos, d_model) of each skip set
            by_set[skips] = runner.resume(batch, streams, skips)
        r = row[tuple(ids)]
        with torch.no_grad():
            out.append(runner.logprobs(by_set[skips][r, : len(ids)]).cpu())
    return out


def continuation_nll(lp: torch.Tensor, ids: list[int], start: int) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of ids[start:] given log-probs (pos, vocab) of ids."""
    targets = torch.tensor(ids[start:])
    return -lp[start - 1 : len(ids) - 1].gather(-1, targets[:, None])[:, 0]


def perplexity(nll: torch.Tensor) -> float:
    return math.exp(float(nll.mean())) if nll.numel() else float("nan")
