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


def logprobs(model, ids: list[int]) -> torch.Tensor:
    """Log-probabilities (pos, vocab) of the model as it is now (inside any probe), float32 on CPU."""
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.cfg.device or "cpu"))[0]
    return torch.log_softmax(logits.float(), -1).cpu()


def logprobs_many(model, items: list[tuple[list[int], list[int]]]) -> list[torch.Tensor]:
    """Log-probabilities (pos, vocab) of each (ids, skip set) item: `logprobs(model, ids)` inside
    `probes.skip(model, skip set)`.

    With nothing but skips attached the texts run as one right-padded batch on the fused weights
    (`fastpath.FastScorer`; causal attention makes the padding exact), and the items of a skip set
    resume the full model's stream at its first skipped block. Otherwise each item is one forward
    through the hooked bridge, so probes see it.
    """
    from probes.core import fastpath
    from probes.core.skip import skip, skipped_blocks

    if not items:
        return []
    if not fastpath.eligible(model):
        out = []
        for ids, layers in items:
            with skip(model, layers):
                out.append(logprobs(model, ids))
        return out
    n = model.cfg.n_layers
    base = set(skipped_blocks(model))
    full_kept = [i for i in range(n) if i not in base]
    texts = list(dict.fromkeys(tuple(ids) for ids, _ in items))  # each text once
    row = {t: r for r, t in enumerate(texts)}
    T = max(map(len, texts))
    batch = torch.tensor(
        [list(t) + [0] * (T - len(t)) for t in texts], device=model.cfg.device
    )  # (texts, pos)
    scorer = fastpath.FastScorer(model)
    final, resid = scorer.stream(batch, full_kept, record=any(set(layers) - base for _, layers in items))
    by_set: dict[tuple, torch.Tensor] = {(): final}  # final residual (texts, pos, d_model) of each skip set
    out = []
    for ids, layers in items:
        extra = tuple(sorted(set(layers) - base))
        if extra not in by_set:
            by_set[extra] = scorer.resume(resid, extra[0], [i for i in full_kept if i not in extra])
        r = row[tuple(ids)]
        x = by_set[extra][r : r + 1, : len(ids)]  # (1, pos, d_model)
        out.append(torch.log_softmax(scorer.logits(x)[0].float(), -1).cpu())
    return out


def continuation_nll(lp: torch.Tensor, ids: list[int], start: int) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of ids[start:] given log-probs (pos, vocab) of ids."""
    targets = torch.tensor(ids[start:])
    return -lp[start - 1 : len(ids) - 1].gather(-1, targets[:, None])[:, 0]


def kl_per_token(lp_p: torch.Tensor, lp_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) in nats at each position, from log-probs (pos, vocab)."""
    return (lp_p.exp() * (lp_p - lp_q)).sum(-1)


def perplexity(nll: torch.Tensor) -> float:
    return math.exp(float(nll.mean())) if nll.numel() else float("nan")
