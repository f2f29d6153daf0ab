"""Lens readout: residual rows read through the final norm and unembedding, as per-row statistics."""

from __future__ import annotations

import numpy as np
import torch

from probes.core.prompt import token_strings
from probes.core.stats import RowStats, chunk_positions


def readout(
    model, resid: list[torch.Tensor], next_ids: list[int], top: int, lens=None
) -> dict[str, np.ndarray]:
    """Statistics of every row of `resid` (each (pos, d_model)), one row and one chunk of positions at a time.

    Returns the LensResult arrays: top_ids, top_probs, entropy, kl_to_final, final_rank,
    final_prob, next_rank, next_prob, next_xent (each (rows, pos[, top])) and final_token (pos,),
    in nats (`probes.core.stats`). `lens` (a `probes.studies.lens.lenses.Lens`; None: the logit lens)
    transforms the rows first. Memory stays bounded whatever the length: a chunk's (positions,
    vocab) buffers are about 64 MiB each.
    """
    from probes.core.runner import runner_for

    if lens is not None:
        resid = lens.transform_rows(model, resid)
    runner = runner_for(model)
    n_rows, n_pos = len(resid), resid[0].shape[0]
    vocab = model.cfg.d_vocab
    if runner.home is not None:
        resid = [x.to(runner.home) for x in resid]
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
    step = chunk_positions(vocab)
    with torch.no_grad():
        for start in range(0, n_pos, step):
            part = slice(start, min(n_pos, start + step))
            _read_chunk(runner, [x[part] for x in resid], next_ids[part], k, out, part)
    return out


def _read_chunk(
    runner, resid: list[torch.Tensor], next_ids: list[int], k: int, out: dict, part: slice
) -> None:
    """Fill `out[...][:, part]` from the rows `resid` (each (pos, d_model)) of one chunk of positions."""
    n_pos, device = resid[0].shape[0], resid[0].device
    stats = RowStats(n_pos, runner.model.cfg.d_vocab, device, resid[0].dtype)
    final_top = stats.reference(runner.readout(resid[-1], out=stats.logits))  # every row is compared with it
    out["final_token"][part] = final_top.cpu().numpy()
    known = np.array(next_ids) >= 0
    targets = torch.tensor([max(i, 0) for i in next_ids], device=device)  # (pos,)
    n_rows = len(resid)
    for r in range(n_rows):
        if r > 0 and torch.equal(resid[r], resid[r - 1]):
            # A skipped block passes the stream through: same row, same numbers.
            for name, array in out.items():
                if name != "final_token":
                    array[r, part] = array[r - 1, part]
            continue
        logits = None if r == n_rows - 1 else runner.readout(resid[r], out=stats.logits)
        got = {name: t.cpu().numpy() for name, t in stats.compare(logits, targets=targets, top=k).items()}
        out["top_ids"][r, part] = got["top_ids"]
        out["top_probs"][r, part] = got["top_probs"]
        out["entropy"][r, part] = got["entropy"]
        out["kl_to_final"][r, part] = got["kl"]
        out["final_rank"][r, part] = got["final_rank"]
        out["final_prob"][r, part] = got["final_prob"]
        if known.any():
            out["next_rank"][r, part][known] = got["next_rank"][known]
            out["next_prob"][r, part][known] = np.exp(got["next_logp"][known])
            out["next_xent"][r, part][known] = -got["next_logp"][known]


def top_strings(model, ids: np.ndarray) -> np.ndarray:
    """Token strings (`token_strings`) for an id array, decoding each distinct id once."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    text = np.empty(len(uniq), dtype=object)
    text[:] = token_strings(model.tokenizer, uniq.tolist())
    return text[inverse].reshape(ids.shape)
