"""Distribution statistics: KL to a reference row, entropy, cross-entropy, ranks, top-k, agreement; nats.

Every study that compares next-token distributions computes them here: the logit and tuned lens
(per prompt, alongside generation, over a dataset), tuned-lens training and its held-out score,
and prune's held-out metrics. One unit system: **nats** (natural logarithms) for KL, entropy and
cross-entropy, as torch's losses and nanoGPT's reported loss are; ranks are 1-based (1 is the top
token; ties share the better rank).

    stats = RowStats(n_pos, vocab, device)       # buffers for one chunk of positions
    stats.reference(final_logits)                # the row every other row is compared with
    out = stats.compare(row_logits, targets=next_ids, top=5)
    out["kl"], out["entropy"], out["next_logp"], out["next_rank"], out["top_ids"], ...
"""

from __future__ import annotations

import torch

UNITS = "nats"
# Elements of one (positions, vocab) buffer: readers read this many at a time, so memory stays
# bounded whatever the length (a RowStats holds seven such buffers, 16 MiB each in float32).
ELEMENTS = 1 << 22


def chunk_positions(vocab: int) -> int:
    """Positions per chunk, so that one (positions, vocab) buffer holds about ELEMENTS floats."""
    return max(1, ELEMENTS // vocab)


def kl(
    logp_ref: torch.Tensor, logp: torch.Tensor, p_ref: torch.Tensor | None = None, *, buf=None
) -> torch.Tensor:
    """KL(ref || row) in nats (...,) from log-probabilities (..., vocab); differentiable in `logp`.

    Summed directly as p_ref . (logp_ref - logp), not as a difference of two sums: no cancellation.
    `buf` (a tensor like logp, no gradient wanted) receives the difference, saving an allocation.
    """
    p_ref = logp_ref.exp() if p_ref is None else p_ref
    diff = logp_ref - logp if buf is None else torch.sub(logp_ref, logp, out=buf)
    return dot(p_ref, diff, buf=buf)


def entropy(logp: torch.Tensor, p: torch.Tensor | None = None, *, buf=None) -> torch.Tensor:
    """Entropy in nats (...,) of log-probabilities (..., vocab)."""
    return -dot(logp.exp() if p is None else p, logp, buf=buf)


def dot(a: torch.Tensor, b: torch.Tensor, *, buf=None) -> torch.Tensor:
    """Row-wise a . b over the last axis: a product into a buffer, then torch's cascaded sum.

    The cascaded sum is 1e-6 accurate where a bmm's float32 accumulation drifts by 1e-4 over a
    50k vocabulary.
    """
    return (a * b if buf is None else torch.mul(a, b, out=buf)).sum(-1)


def rank(logp: torch.Tensor, target: torch.Tensor, *, buf=None) -> torch.Tensor:
    """1 + how many tokens score strictly higher than `target` (..., 1): the target's rank (...,)."""
    higher = (
        logp > logp.gather(-1, target) if buf is None else torch.gt(logp, logp.gather(-1, target), out=buf)
    )
    return higher.sum(-1) + 1


FIELDS = (
    "kl",
    "entropy",
    "agreement",
    "final_rank",
    "final_prob",
    "next_logp",
    "next_rank",
    "next_hit",
    "top",
)


class RowStats:
    """The statistics of rows of logits against a reference row, for one chunk of positions.

    Preallocated (positions, vocab) buffers: fresh tensors this size would be mmapped and
    page-faulted on every operation of every row, which costs as much as the unembedding itself
    on a CPU. Each row's logits may be written into `self.logits` (`readout(..., out=)`).
    """

    def __init__(self, n_pos: int, vocab: int, device, dtype=torch.float32):
        buf = lambda dt=torch.float32: torch.empty(n_pos, vocab, device=device, dtype=dt)
        self.logits = buf(dtype)
        self.logp_ref, self.p_ref, self.logp, self.p, self.scratch = buf(), buf(), buf(), buf(), buf()
        self.flags = buf(torch.bool)
        self.top_ref: torch.Tensor | None = None

    def log_probs(self, logits: torch.Tensor, dest: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits if logits.dtype == torch.float32 else logits.float(), -1, out=dest)

    def reference(self, logits: torch.Tensor) -> torch.Tensor:
        """Make `logits` (pos, vocab) the reference row (the model's output); return its top-1 ids (pos,)."""
        self.log_probs(logits, self.logp_ref)
        torch.exp(self.logp_ref, out=self.p_ref)
        self.top_ref = self.logp_ref.argmax(-1)
        return self.top_ref

    def compare(
        self,
        logits: torch.Tensor | None,
        *,
        targets: torch.Tensor | None = None,
        top: int = 0,
        fields=FIELDS,
    ) -> dict[str, torch.Tensor]:
        """The `fields` of one row (logits (pos, vocab); None: the reference row) as tensors (pos[, top]).

        kl: KL(reference || row); entropy; agreement: top-1 equals the reference's; final_rank and
        final_prob: of the reference's top-1 token; with `targets` (pos,), the true next tokens:
        next_logp (log-probability: minus the cross-entropy), next_rank, next_hit (top-1 is the
        target); with `top` > 0, top_ids and top_probs (pos, top).
        """
        if logits is None:
            lp, p = self.logp_ref, self.p_ref
        else:
            lp = self.log_probs(logits, self.logp)
            p = torch.exp(lp, out=self.p)
        want = set(fields)
        out: dict[str, torch.Tensor] = {}
        row_top = lp.argmax(-1) if want & {"agreement", "next_hit"} else None
        if "entropy" in want:
            out["entropy"] = entropy(lp, p, buf=self.scratch)
        if "kl" in want:
            out["kl"] = (
                torch.zeros(lp.shape[0], device=lp.device)
                if logits is None
                else kl(self.logp_ref, lp, self.p_ref, buf=self.scratch).clamp(min=0)
            )
        if "agreement" in want:
            out["agreement"] = row_top == self.top_ref
        if "final_rank" in want:
            out["final_rank"] = rank(lp, self.top_ref[:, None], buf=self.flags)
        if "final_prob" in want:
            out["final_prob"] = lp.gather(-1, self.top_ref[:, None])[:, 0].exp()
        if targets is not None:
            t = targets[:, None]  # (pos, 1)
            if "next_logp" in want:
                out["next_logp"] = lp.gather(-1, t)[:, 0]
            if "next_rank" in want:
                out["next_rank"] = rank(lp, t, buf=self.flags)
            if "next_hit" in want:
                out["next_hit"] = row_top == targets
        if top and "top" in want:
            vals, idx = torch.topk(lp, min(top, lp.shape[-1]), dim=-1)  # (pos, top)
            out["top_ids"], out["top_probs"] = idx, vals.exp()
        return out
