"""Sampling math: the distribution a token is drawn from (softmax(logits / T), top-k, then top-p), and its summaries."""

from __future__ import annotations

import torch

from probes.core.sampling import SamplingConfig


def sampling_probs(logits: torch.Tensor, settings: SamplingConfig) -> torch.Tensor:
    """The distribution a token is drawn from, for logits of shape (..., vocab), in float32."""
    logits = logits.float()
    if settings.is_greedy:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    scaled = logits / settings.temperature
    if settings.top_k is not None and settings.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, settings.top_k, dim=-1).values[..., -1:]  # (..., 1)
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if settings.top_p is not None and settings.top_p < 1:
        # Order by the scaled logits, not the probabilities: two logits a rounding step apart can
        # share one float32 probability, and the more likely token must still come first.
        order = torch.sort(scaled, dim=-1, descending=True, stable=True).indices
        sorted_p = probs.gather(-1, order)
        # Keep the smallest prefix whose mass reaches top_p: drop a token once the mass
        # before it already reaches top_p (the first token is always kept).
        before = sorted_p.cumsum(-1) - sorted_p
        drop = before >= settings.top_p
        drop[..., 0] = False  # a top-p below float32's resolution must still leave the argmax
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def pick_token(logits: torch.Tensor, settings: SamplingConfig, generator: torch.Generator | None) -> int:
    """One token id from logits of shape (vocab,)."""
    if settings.is_greedy:
        return int(logits.argmax())
    return draw_index(sampling_probs(logits, settings).cpu(), generator)  # on the CPU: a seed means the same on any device


def draw_index(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One index drawn from a 1-D distribution, drawing among its nonzero entries only.

    `torch.multinomial` draws one exponential per entry, 1.4 ms a token over GPT-2's 50,257 on a
    CPU core, 16% of a 16-row decoding step; top-k leaves a few hundred. The distribution is the
    same; which token a given seed picks is this function's (the entries are kept in id order).
    """
    support = probs.nonzero().squeeze(-1)  # (n,) ids in increasing order
    if len(support) == len(probs):
        return int(torch.multinomial(probs, 1, generator=generator))
    return int(support[torch.multinomial(probs[support], 1, generator=generator)])


def entropy_bits(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in bits along the last axis (0 log 0 = 0)."""
    p = probs.double()
    return -(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum(-1)


def mass_count(probs: torch.Tensor, mass: float = 0.99) -> int:
    """How many of the most likely tokens it takes to reach `mass` of the probability (1-D probs)."""
    sorted_p = torch.sort(probs.double(), descending=True).values
    return int((sorted_p.cumsum(0) < mass - 1e-12).sum()) + 1
