"""Text and distribution metrics: distinct-n, repetition, perplexity, KL, top-1 agreement, eval loss."""

from __future__ import annotations

import math

import torch

from probes.core.prompt import bos_id
from probes.core.windows import cut


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


def continuation_nll(lp: torch.Tensor, ids: list[int], start: int) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of ids[start:] given log-probs (pos, vocab) of ids."""
    targets = torch.tensor(ids[start:])
    return -lp[start - 1 : len(ids) - 1].gather(-1, targets[:, None])[:, 0]


def kl_per_token(lp_p: torch.Tensor, lp_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) in nats at each position, from log-probs (pos, vocab)."""
    return (lp_p.exp() * (lp_p - lp_q)).sum(-1)


def eval_windows(model, text: str, max_tokens: int = 2048) -> list[list[int]]:
    """The eval text as BOS-prefixed windows of at most n_ctx tokens, up to `max_tokens` tokens."""
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    return [w for _, w in cut(ids, model.cfg.n_ctx, bos_id(model))]


def eval_logprobs(model, windows: list[list[int]]) -> list[torch.Tensor]:
    return [logprobs(model, w) for w in windows]


def eval_loss(lps: list[torch.Tensor], windows: list[list[int]]) -> float:
    """Mean cross-entropy (nats per token) over every token of every window after the BOS."""
    nll = torch.cat([continuation_nll(lp, w, 1) for lp, w in zip(lps, windows)])
    return float(nll.mean())


def agreement_and_kl(lps_full: list[torch.Tensor], lps_other: list[torch.Tensor]) -> tuple[float, float]:
    """(mean KL(full || other) in nats, top-1 agreement) over all positions of all windows."""
    kl = torch.cat([kl_per_token(a, b) for a, b in zip(lps_full, lps_other)])
    agree = torch.cat([(a.argmax(-1) == b.argmax(-1)).float() for a, b in zip(lps_full, lps_other)])
    return float(kl.mean()), float(agree.mean())


def perplexity(nll: torch.Tensor) -> float:
    return math.exp(float(nll.mean())) if nll.numel() else float("nan")
