"""Logit lens: decode every layer's residual stream through the final norm and unembedding.

For a model of L blocks the lens has L+1 rows: row i < L is the stream entering block i
(`blocks.{i}.hook_resid_pre`, row 0 is the embedding), row L the stream after the last block
(`blocks.{L-1}.hook_resid_post`). Each row is decoded exactly as the model decodes its last
row: the final LayerNorm, with statistics recomputed from that row, then the unembedding. So
row L *is* the model's output distribution.

Units: entropy, KL(final || row) and cross-entropy are in **bits**; ranks are 1-based (rank 1
is the top token, ties share the better rank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from probes.errors import SpecError

LN2 = math.log(2.0)
UNITS = {"entropy": "bits", "kl_to_final": "bits", "next_token_xent": "bits", "ranks": "1 = top token"}


def row_hooks(n_layers: int) -> list[str]:
    """The L+1 hook names whose streams the lens decodes, input first."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [f"blocks.{n_layers - 1}.hook_resid_post"]


def row_labels(n_layers: int, skipped: Sequence[int] = ()) -> list[str]:
    """Short names of the rows: 'embed', then the block each row comes out of."""
    gone = set(skipped)
    labels = ["embed"]
    for i in range(n_layers):
        labels.append(f"{i} (skipped)" if i in gone else str(i))
    return labels


def decode_residual(model, resid: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (..., vocab) of residual-stream rows (..., d_model), as the model's own last step.

    The final LayerNorm recomputes mean and variance from `resid` itself; reusing the last
    layer's cached scale silently flattens (or sharpens) early-layer predictions. The plain
    torch modules inside the bridge are called, so no hook fires: in compatibility mode they
    hold the folded weights (LN affine folded into a centred W_U), and the model's forward
    reaches its logits through exactly these two calls. `out` (pos, vocab), for 2-D `resid`,
    receives the logits without allocating.
    """
    ln = model.ln_final.original_component
    unembed = model.unembed.original_component
    h = ln(resid)  # (..., d_model)
    if out is None or resid.dim() != 2 or getattr(unembed, "_hf_hook", None) is not None:
        logits = unembed(h)
        return logits if out is None else out.copy_(logits)
    weight, bias = unembed.weight, unembed.bias  # (vocab, d_model), (vocab,)
    if bias is None:
        return torch.mm(h, weight.t(), out=out)
    return torch.addmm(bias, h, weight.t(), out=out)


@dataclass
class LensResult:
    """The logit lens of one token sequence.

    Arrays are indexed [row][j] where row runs over the L+1 rows (`rows`, input first) and j over
    `positions` (the sequence positions decoded; all of them by default). Entropy, KL and
    cross-entropy are in bits; ranks are 1-based. "final" refers to row L, the model's output;
    "next" to the token actually at position+1 (unknown at the last position: rank -1, NaN).
    """

    prompt: str | None
    tokens: list[int]  # the ids fed, BOS included
    str_tokens: list[str]
    positions: list[int]  # the decoded positions, absolute indices into `tokens`
    rows: list[str]  # hook names
    row_labels: list[str]
    top_ids: np.ndarray  # (rows, pos, k) int64
    top_strings: np.ndarray  # (rows, pos, k) object (str)
    top_probs: np.ndarray  # (rows, pos, k) float32
    entropy: np.ndarray  # (rows, pos) bits
    kl_to_final: np.ndarray  # (rows, pos) bits, KL(final || row)
    final_token: np.ndarray  # (pos,) the final row's top-1 id
    final_rank: np.ndarray  # (rows, pos) rank of final_token in each row
    final_prob: np.ndarray  # (rows, pos)
    next_token: np.ndarray  # (pos,) the id at position+1, -1 where unknown
    next_rank: np.ndarray  # (rows, pos) -1 where unknown
    next_prob: np.ndarray  # (rows, pos) NaN where unknown
    next_xent: np.ndarray  # (rows, pos) bits, -log2 p(next), NaN where unknown
    n_vocab: int = 0
    model_name: str = ""
    skipped: list[int] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def column(self, position: int) -> int:
        """Index j into the arrays for an absolute (or negative) sequence position."""
        n = len(self.tokens)
        p = check_position(position, n)
        if p not in self.positions:
            shown = _ranges(self.positions)
            raise SpecError(f"position {position} was not decoded; this lens covers positions {shown}")
        return self.positions.index(p)

    def emergence(self, target: str = "final") -> list[int | None]:
        """Per position, the first row from which `target` ('final' or 'next') stays the top-1 token.

        None where the token is not top-1 in the last row (or the next token is unknown).
        """
        if target not in ("final", "next"):
            raise SpecError(f"unknown emergence target {target!r}; use 'final' or 'next'")
        ranks = self.final_rank if target == "final" else self.next_rank
        return emergence_rows(ranks)

    def table(self, position: int = -1) -> list[dict]:
        """One dict per row for one position: top-k (token, prob), entropy, KL, ranks."""
        j = self.column(position)
        out = []
        for r in range(self.n_rows):
            out.append({
                "row": self.row_labels[r],
                "hook": self.rows[r],
                "top": [(str(s), float(p)) for s, p in zip(self.top_strings[r, j], self.top_probs[r, j])],
                "entropy": float(self.entropy[r, j]),
                "kl_to_final": float(self.kl_to_final[r, j]),
                "final_rank": int(self.final_rank[r, j]),
                "final_prob": float(self.final_prob[r, j]),
                "next_rank": int(self.next_rank[r, j]) if self.next_token[j] >= 0 else None,
                "next_prob": float(self.next_prob[r, j]) if self.next_token[j] >= 0 else None,
                "next_xent": float(self.next_xent[r, j]) if self.next_token[j] >= 0 else None,
            })
        return out

    def figure(self, metric: str = "prob", **kwargs):
        """A matplotlib Figure: rows x positions, coloured by `metric`, cells labelled by top-1."""
        from probes.plots.lens import lens_figure

        return lens_figure(self, metric, **kwargs)

    def as_dict(self) -> dict:
        """JSON-ready: every [row][pos] array over `positions`; see UNITS."""
        known = self.next_token >= 0
        return {
            "model": self.model_name,
            "skipped_blocks": list(self.skipped),
            "prompt": self.prompt,
            "tokens": list(self.tokens),
            "str_tokens": list(self.str_tokens),
            "positions": list(self.positions),
            "rows": list(self.rows),
            "row_labels": list(self.row_labels),
            "units": dict(UNITS),
            "top_tokens": self.top_ids.tolist(),
            "top_str_tokens": self.top_strings.tolist(),
            "top_probs": round_floats(self.top_probs),
            "entropy": round_floats(self.entropy),
            "kl_to_final": round_floats(self.kl_to_final),
            "final_token": self.final_token.tolist(),
            "final_token_rank": self.final_rank.tolist(),
            "final_token_prob": round_floats(self.final_prob),
            "final_emergence_row": self.emergence("final"),
            "next_token": [int(t) if t >= 0 else None for t in self.next_token],
            "next_token_rank": [[int(v) if k else None for v, k in zip(row, known)] for row in self.next_rank],
            "next_token_prob": round_floats(self.next_prob),
            "next_token_xent": round_floats(self.next_xent),
        }


def round_floats(a: np.ndarray, digits: int = 6):
    return np.round(a.astype(np.float64), digits).tolist()


def _ranges(ps: list[int]) -> str:
    from probes.layers import format_layers

    return format_layers(sorted(ps))


def check_position(position: int, n: int) -> int:
    """An absolute position in 0..n-1 for `position` (negative counts from the end)."""
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
        raise SpecError(f"position {position!r} is not an integer")
    p = int(position) + n if position < 0 else int(position)
    if not 0 <= p < n:
        raise SpecError(f"position {position} is out of range: the prompt has {n} tokens (0-{n - 1}, or -{n} to -1)")
    return p


def emergence_rows(ranks: np.ndarray) -> list[int | None]:
    """For ranks (rows, pos): per position, the first row from which the rank stays 1, else None."""
    out: list[int | None] = []
    for col in np.asarray(ranks).T:
        first = None
        for r in range(len(col) - 1, -1, -1):
            if col[r] != 1:
                break
            first = r
        out.append(first)
    return out


def _token_ids(model, prompt, bos: bool) -> tuple[str | None, list[int]]:
    from probes.prompt import encode, read_prompt

    if isinstance(prompt, str):
        text = read_prompt(prompt)
        return text, encode(model, text, bos=bos)
    if isinstance(prompt, torch.Tensor):
        prompt = prompt.reshape(-1).tolist()
    ids = [int(i) for i in prompt]
    if not ids:
        raise SpecError("no tokens given")
    if len(ids) > model.cfg.n_ctx:
        raise SpecError(f"{len(ids)} tokens is more than the model's context of {model.cfg.n_ctx}")
    vocab = model.cfg.d_vocab
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise SpecError(f"token id {bad[0]} is out of range for a vocabulary of {vocab}")
    return None, ids


def _positions(positions, n: int) -> list[int]:
    if positions is None:
        return list(range(n))
    if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
        positions = [positions]
    out = sorted({check_position(p, n) for p in positions})
    if not out:
        raise SpecError("no positions given")
    return out


def logit_lens(model, prompt, *, top_k: int = 5, positions=None, bos: bool = True) -> LensResult:
    """The logit lens of `prompt` (text, `FILE:path`, or token ids fed as they are).

    One forward pass records the residual stream at the L+1 rows for the chosen `positions`
    (all by default; ints, negative from the end); the rows are then decoded one at a time, so
    at most a few (positions, vocab) tensors exist at once, never (rows, positions, vocab).
    Works inside `probes.skip(...)`: a skipped block's row equals the row before it.
    """
    from probes.hooks import attached

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise SpecError(f"top-k must be an integer >= 1, got {top_k}")
    text, ids = _token_ids(model, prompt, bos)
    cols = _positions(positions, len(ids))
    n_layers = model.cfg.n_layers
    names = row_hooks(n_layers)
    device = model.cfg.device or "cpu"
    index = torch.tensor(cols, device=device)
    resid: list[torch.Tensor | None] = [None] * len(names)

    def keep(r):
        def hook(t, hook):
            resid[r] = t[0].index_select(0, index.to(t.device)).detach().clone()  # (pos, d_model)

        return hook

    ids_t = torch.tensor([ids], device=device)  # (1, pos)
    with torch.no_grad(), attached(model, [(n, keep(r)) for r, n in enumerate(names)]):
        # The transformer body only: the lens decodes row L itself, so lm_head would be wasted.
        model.original_model.transformer(input_ids=ids_t, position_ids=torch.arange(len(ids), device=device)[None])
    assert all(x is not None for x in resid), "a residual hook did not fire"
    next_ids = [ids[p + 1] if p + 1 < len(ids) else -1 for p in cols]
    return build_result(model, resid, ids, cols, next_ids, top_k, text)


# Elements per (positions, vocab) work buffer: long prompts are decoded in chunks of positions,
# so memory stays bounded (seven such buffers, 64 MiB each in float32) whatever the length.
_CHUNK_ELEMENTS = 1 << 24


def build_result(model, resid, ids, cols, next_ids, top_k, text) -> LensResult:
    """Decode rows (each (pos, d_model)) into a LensResult, one row and one chunk of positions at a time."""
    from probes.model import source_of
    from probes.prompt import token_strings
    from probes.skipping import skipped_layers

    n_rows, n_pos = len(resid), len(cols)
    vocab = model.cfg.d_vocab
    home = model.unembed.original_component.weight.device  # blocks may sit on other devices
    if home.type != "meta":  # meta: offloaded weights, moved in by accelerate's own hook
        resid = [x.to(home) for x in resid]
    k = min(top_k, vocab)
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

    skipped = skipped_layers(model)
    return LensResult(
        prompt=text,
        tokens=list(ids),
        str_tokens=token_strings(model, ids),
        positions=list(cols),
        rows=row_hooks(n_rows - 1),
        row_labels=row_labels(n_rows - 1, skipped),
        top_strings=_strings(model, out["top_ids"]),
        next_token=np.array(next_ids, np.int64),
        n_vocab=vocab,
        model_name=source_of(model).name,
        skipped=skipped,
        **out,
    )


def _decode_chunk(model, resid: list[torch.Tensor], next_ids: list[int], k: int, out: dict, part: slice) -> None:
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


def _strings(model, ids: np.ndarray) -> np.ndarray:
    """Token strings for an id array, decoding each distinct id once."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    text = np.empty(len(uniq), dtype=object)
    text[:] = model.tokenizer.batch_decode([[int(i)] for i in uniq])
    return text[inverse].reshape(ids.shape)
