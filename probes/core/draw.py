"""Sampling math: the distribution a token is drawn from (softmax(logits / T), top-k, then top-p), and its
summaries."""

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
    return pick_tokens(logits[None], settings, [generator])[0]


def pick_tokens(logits: torch.Tensor, settings: SamplingConfig, generators: list) -> list[int]:
    """One token id per row of logits (rows, vocab), row r drawn with `generators[r]` from `sampling_probs`'
    distribution.

    With top-k and no top-p only the k largest logits are softmaxed (the same distribution, without
    masking and softmaxing the whole vocabulary; ties at the k-th logit keep k of them, not all).
    Draws happen on the CPU, so a seed means the same on any device.
    """
    if settings.is_greedy:
        return logits.argmax(-1).tolist()
    if settings.top_k is not None and settings.top_p is None and settings.top_k < logits.shape[-1]:
        values, ids = torch.topk(logits.float() / settings.temperature, settings.top_k, dim=-1)  # (rows, k)
        order = ids.argsort(-1)  # id order, as draw_index reads a full distribution
        ids, probs = ids.gather(-1, order).cpu(), torch.softmax(values, -1).gather(-1, order).cpu()
        return [int(ids[r, _invert(probs[r], g)]) for r, g in enumerate(generators)]
    probs = sampling_probs(logits, settings).cpu()
    return [draw_index(probs[r], g) for r, g in enumerate(generators)]


def draw_index(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One index drawn from a 1-D distribution: one uniform number, inverted through the cumulative sum in id
    order.

    `torch.multinomial` draws one exponential per entry, 1.4 ms a token over GPT-2's 50,257 on a
    CPU core (16% of a 16-row decoding step). One uniform number costs nothing, and the draw is
    as stable: float rounding that moves the probabilities slightly (a batched row against the same
    row alone) changes the token only when the number falls within that rounding of a boundary.
    """
    support = probs.nonzero().squeeze(-1)  # (n,) ids in increasing order
    return int(support[_invert(probs[support], generator)])


def _invert(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """The index at which the cumulative sum of `probs` (1-D, nonnegative) first exceeds u * total, u
    uniform."""
    cdf = probs.double().cumsum(0)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    return min(int(torch.searchsorted(cdf, u, right=True)), len(cdf) - 1)


def entropy_of(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats along the last axis of probabilities (0 log 0 = 0), the unit of `probes.core.stats`."""
    p = probs.double()
    return -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(-1)


def mass_count(probs: torch.Tensor, mass: float = 0.99) -> int:
    """How many of the most likely tokens it takes to reach `mass` of the probability (1-D probs)."""
    sorted_p = torch.sort(probs.double(), descending=True).values
    return int((sorted_p.cumsum(0) < mass - 1e-12).sum()) + 1
