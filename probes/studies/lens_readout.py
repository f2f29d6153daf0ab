"""Lens readout: decode residual rows through the final norm and unembedding into per-row statistics, in
bounded memory."""

from __future__ import annotations

import math

import numpy as np
import torch

from probes.core.prompt import token_strings

LN2 = math.log(2.0)

# Elements per (positions, vocab) work buffer: long prompts are decoded in chunks of positions,
# so memory stays bounded (seven such buffers, 64 MiB each in float32, and on a CPU an eighth for
# oneDNN's product before it is copied in) whatever the length.
_CHUNK_ELEMENTS = 1 << 24


def decode_residual(model, resid: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (..., vocab) of residual-stream rows (..., d_model), as the model's own last step.

    The final LayerNorm recomputes mean and variance from `resid` itself; reusing the last
    layer's cached scale silently flattens (or sharpens) early-layer predictions. The plain
    torch modules inside the bridge are called, so no hook fires: in compatibility mode they
    hold the folded weights (LN affine folded into a centred W_U), and the model's forward
    reaches its logits through exactly these two calls. `out` (pos, vocab), for 2-D `resid`,
    receives the logits (oneDNN on a CPU makes them first, then copies: still faster than MKL in place).
    """
    ln = model.ln_final.original_component
    unembed = model.unembed.original_component
    h = ln(resid)  # (..., d_model)
    if out is None or resid.dim() != 2 or getattr(unembed, "_hf_hook", None) is not None:
        logits = unembed(h)
        return logits if out is None else out.copy_(logits)
    from probes.core.fastpath import linear_out_in

    return linear_out_in(h, unembed.weight, unembed.bias, out=out)  # weight (vocab, d_model), bias (vocab,)


def readout(
    model, resid: list[torch.Tensor], next_ids: list[int], top: int, translators=None
) -> dict[str, np.ndarray]:
    """Statistics of every row of `resid` (each (pos, d_model)), one row and one chunk of positions at a time.

    Returns the LensResult arrays: top_ids, top_probs, entropy, kl_to_final, final_rank,
    final_prob, next_rank, next_prob, next_xent (each (rows, pos[, top])) and final_token (pos,).
    `translators` (a `probes.studies.tuned_lens.TunedLens`) maps each row but the last first.
    """
    if translators is not None:
        resid = translators.translate_rows(model, resid)
    n_rows, n_pos = len(resid), resid[0].shape[0]
    vocab = model.cfg.d_vocab
    home = model.unembed.original_component.weight.device  # blocks may sit on other devices
    if home.type != "meta":  # meta: offloaded weights, moved in by accelerate's own hook
        resid = [x.to(home) for x in resid]
    k = min(top, vocab)
    out = {
        "top_ids": np.zeros((n_rows, n_pos, k), np.int64),
        "top_probs": np.zeros((n_rows, n_pos, k), np.float32),
        "entropy": np.zeros((n_rows, n_pos), np.float32),
        "kl_to_final": np.zeros((n_rows, n_pos), np.float32),
        "final_rank": np.zeros((n_rows, n_pos), np.int64),
        "final_prob": np.zeros((n_rows, n_pos), np.float32),
        "next_rank": np.full((n_rows, n_pos), -1, np.int64),
        "next_prob": np.full((n_rows, n_pos), np.nan, np.float32),
        "next_xent": np.full((n_rows, n_pos), np.nan, np.float32),
        "final_token": np.zeros(n_pos, np.int64),
    }
    step = max(1, _CHUNK_ELEMENTS // vocab)
    with torch.no_grad():
        for start in range(0, n_pos, step):
            part = slice(start, min(n_pos, start + step))
            _decode_chunk(model, [x[part] for x in resid], next_ids[part], k, out, part)
    return out


def _decode_chunk(
    model, resid: list[torch.Tensor], next_ids: list[int], k: int, out: dict, part: slice
) -> None:
    """Fill `out[...][:, part]` from the rows `resid` (each (pos, d_model)) of one chunk of positions."""
    n_pos, device = resid[0].shape[0], resid[0].device
    vocab, dtype = model.cfg.d_vocab, resid[0].dtype
    # Preallocated (pos, vocab) buffers: fresh tensors this size would be mmapped and page-faulted
    # on every operation of every row, which costs as much as the unembedding itself on a CPU.
    buf = lambda dt=torch.float32: torch.empty(n_pos, vocab, device=device, dtype=dt)
    logits = buf(dtype)
    logp_f, p_f, logp, p, scratch, products = buf(), buf(), buf(), buf(), buf(), buf()

    def log_probs(x, dest):
        decode_residual(model, x, out=logits)
        torch.log_softmax(logits if dtype == torch.float32 else logits.float(), -1, out=dest)

    def dot(a, b):  # row-wise a . b, (pos, vocab) x2 -> (pos,)
        # mul into a buffer, then torch's cascaded sum: 1e-6 accurate where bmm's float32
        # accumulation drifts by 1e-4 over a 50k vocabulary.
        return torch.mul(a, b, out=products).sum(-1)

    def rank(lp, target):  # 1 + how many tokens score strictly higher than target (pos, 1)
        return torch.gt(lp, lp.gather(-1, target), out=scratch).sum(-1) + 1

    log_probs(resid[-1], logp_f)  # the final row first: every other row is compared with it
    torch.exp(logp_f, out=p_f)
    final_top = logp_f.argmax(-1, keepdim=True)  # (pos, 1)
    out["final_token"][part] = final_top[:, 0].cpu().numpy()
    known = np.array(next_ids) >= 0
    nxt = torch.tensor([max(i, 0) for i in next_ids], device=device)[:, None]  # (pos, 1)
    n_rows = len(resid)
    for r in range(n_rows):
        if r > 0 and torch.equal(resid[r], resid[r - 1]):
            # A skipped block passes the stream through: same row, same numbers.
            for name, array in out.items():
                if name != "final_token":
                    array[r, part] = array[r - 1, part]
            continue
        if r == n_rows - 1:
            lp, pr = logp_f, p_f
        else:
            log_probs(resid[r], logp)
            lp, pr = logp, torch.exp(logp, out=p)
        vals, idx = torch.topk(lp, k, dim=-1)  # (pos, k)
        out["top_ids"][r, part] = idx.cpu().numpy()
        out["top_probs"][r, part] = vals.exp().cpu().numpy()
        out["entropy"][r, part] = (-dot(pr, lp) / LN2).cpu().numpy()
        # KL(final || row) summed directly, not as a difference of two sums: no cancellation.
        kl = dot(p_f, torch.sub(logp_f, lp, out=scratch)) / LN2
        out["kl_to_final"][r, part] = kl.clamp(min=0).cpu().numpy()
        out["final_rank"][r, part] = rank(lp, final_top).cpu().numpy()
        out["final_prob"][r, part] = lp.gather(-1, final_top)[:, 0].exp().cpu().numpy()
        if known.any():
            lp_next = lp.gather(-1, nxt)[:, 0].cpu().numpy()  # (pos,)
            ranks = rank(lp, nxt).cpu().numpy()
            out["next_rank"][r, part][known] = ranks[known]
            out["next_prob"][r, part][known] = np.exp(lp_next[known])
            out["next_xent"][r, part][known] = -lp_next[known] / LN2


def top_strings(model, ids: np.ndarray) -> np.ndarray:
    """Token strings (`token_strings`) for an id array, decoding each distinct id once."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    text = np.empty(len(uniq), dtype=object)
    text[:] = token_strings(model.tokenizer, uniq.tolist())
    return text[inverse].reshape(ids.shape)
