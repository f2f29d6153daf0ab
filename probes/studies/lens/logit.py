"""Logit lens: decode every layer's residual stream through the final norm and unembedding.

For a model of L blocks the lens has L+1 rows: row i < L is the stream entering block i
(`blocks.{i}.hook_resid_pre`, row 0 is the embedding), row L the stream after the last block
(`blocks.{L-1}.hook_resid_post`). Each row is decoded exactly as the model decodes its last
row: the final LayerNorm, with statistics recomputed from that row, then the unembedding. So
row L *is* the model's output distribution.

Units: entropy, KL(final || row) and cross-entropy are in **nats** (`probes.core.stats`); ranks
are 1-based (rank 1 is the top token, ties share the better rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from probes.core.hooks import row_hooks
from probes.errors import SpecError
from probes.studies.lens.lenses import UNSET, LogitLens
from probes.tokens import check_top

UNITS = {"entropy": "nats", "kl_to_final": "nats", "next_token_xent": "nats", "ranks": "1 = top token"}


def row_labels(n_layers: int, skipped: Sequence[int] = (), mid: bool = False) -> list[str]:
    """Short names of the rows: 'embed', then the block each row comes out of ('3 attn': block 3's stream
    after its attention, before its MLP, with `mid`)."""
    gone = set(skipped)
    labels = ["embed"]
    for i in range(n_layers):
        done = " (skipped)" if i in gone else ""
        labels += [f"{i} attn{done}", f"{i}{done}"] if mid else [f"{i}{done}"]
    return labels


def mid_row_hooks(n_layers: int) -> list[str]:
    """The 2L+1 hook names of the rows with `mid`: each block's resid_pre and resid_mid, then the last
    resid_post."""
    rows = row_hooks(n_layers)
    return [n for i in range(n_layers) for n in (rows[i], f"blocks.{i}.hook_resid_mid")] + rows[-1:]


def mid_streams(model, ids: torch.Tensor) -> list[torch.Tensor]:
    """The 2L+1 rows of `mid_row_hooks`, each (batch, pos, d_model), from one hooked forward."""
    from probes.core.hooks import attached
    from probes.core.runner import runner_for

    n = model.cfg.n_layers
    if f"blocks.{n - 1}.hook_resid_mid" not in model.hook_dict:
        raise SpecError(
            "mid=True: this model's blocks have no resid_mid (parallel attention and MLP, as GPT-NeoX and "
            "GPT-J: both read the block's input)"
        )
    mids: dict[int, torch.Tensor] = {}

    def keep(t, hook, i):
        mids[i] = t.detach().clone()

    hooks = [(f"blocks.{i}.hook_resid_mid", lambda t, hook, i=i: keep(t, hook, i)) for i in range(n)]
    with attached(model, hooks), torch.no_grad():  # a hook attached: the hooked runner computes
        rows = runner_for(model).streams(ids)
    # A skipped block computes nothing: its stream after attention is its input.
    return [x for i in range(n) for x in (rows[i], mids.get(i, rows[i]))] + rows[-1:]


@dataclass
class LensResult:
    """The logit lens of one token sequence.

    Arrays are indexed [row][j] where row runs over the L+1 rows (`rows`, input first) and j over
    `positions` (the sequence positions decoded; all of them by default). Entropy, KL and
    cross-entropy are in nats; ranks are 1-based. "final" refers to row L, the model's output;
    "next" to the token actually at position+1 (unknown at the last position: rank -1, NaN).
    """

    prompt: str | None
    tokens: list[int]  # the ids fed, BOS included
    str_tokens: list[str]
    positions: list[int]  # the decoded positions, absolute indices into `tokens`
    rows: list[str]  # hook names
    row_labels: list[str]
    top_ids: np.ndarray  # (rows, pos, top) int64
    top_str_tokens: np.ndarray  # (rows, pos, top) object (str)
    top_probs: np.ndarray  # (rows, pos, top) float32
    entropy: np.ndarray  # (rows, pos) nats
    kl_to_final: np.ndarray  # (rows, pos) nats, KL(final || row)
    final_token: np.ndarray  # (pos,) the final row's top-1 id
    final_rank: np.ndarray  # (rows, pos) rank of final_token in each row
    final_prob: np.ndarray  # (rows, pos)
    next_token: np.ndarray  # (pos,) the id at position+1, -1 where unknown
    next_rank: np.ndarray  # (rows, pos) -1 where unknown
    next_prob: np.ndarray  # (rows, pos) NaN where unknown
    next_xent: np.ndarray  # (rows, pos) nats, -ln p(next), NaN where unknown
    d_vocab: int = 0
    model_name: str = ""
    skipped_blocks: list[int] = field(default_factory=list)
    tuned_lens: str | None = None  # the tuned lens the rows were read through (its folder); None: logit lens
    compare: LensResult | None = None  # with compare_skip: the same tokens with more blocks skipped

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        skipped = f", blocks {_ranges(self.skipped_blocks)} skipped" if self.skipped_blocks else ""
        tuned = f", tuned lens {self.tuned_lens!r}" if self.tuned_lens else ""
        compare = f"; compare: blocks {_ranges(self.compare.skipped_blocks)} skipped" if self.compare else ""
        return (
            f"LensResult({self.n_rows} rows x {len(self.positions)} positions, top {self.top_ids.shape[-1]}, "
            f"model {self.model_name!r}{skipped}{tuned}{compare})"
        )

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
        """One dict per row for one position: its `top` (token, prob) pairs, entropy, KL, ranks."""
        j = self.column(position)
        out = []
        for r in range(self.n_rows):
            out.append(
                {
                    "row": self.row_labels[r],
                    "hook": self.rows[r],
                    "top": [
                        (str(s), float(p)) for s, p in zip(self.top_str_tokens[r, j], self.top_probs[r, j])
                    ],
                    "entropy": float(self.entropy[r, j]),
                    "kl_to_final": float(self.kl_to_final[r, j]),
                    "final_rank": int(self.final_rank[r, j]),
                    "final_prob": float(self.final_prob[r, j]),
                    "next_rank": int(self.next_rank[r, j]) if self.next_token[j] >= 0 else None,
                    "next_prob": float(self.next_prob[r, j]) if self.next_token[j] >= 0 else None,
                    "next_xent": float(self.next_xent[r, j]) if self.next_token[j] >= 0 else None,
                }
            )
        return out

    def figure(self, metric: str = "prob", **kwargs):
        """A matplotlib Figure: rows x positions, coloured by `metric`, cells labelled by top-1."""
        from probes.plots.lens import lens_figure

        return lens_figure(self, metric, **kwargs)

    def to_html(self, path, *, others=(), force: bool = False):
        """Write the interactive lens view: one self-contained HTML file (no network), opened in any browser.

        `others`: the same prompt read through other lenses (`logit_lens(..., lens=tuned)`), switched
        between in the view. Returns the path written; an existing file is replaced only with `force`.
        """
        from probes.views.lens import lens_page
        from probes.views.page import check_html_path, write_page

        check_html_path(path, force=force, param="path")
        return write_page(path, lens_page(self, others), force=force)

    def _repr_html_(self) -> str:
        """The interactive view in a notebook cell (a sandboxed iframe: its script and styles stay in it)."""
        from probes.views.lens import lens_frame

        return lens_frame(self)

    def to_dataframe(self):
        """A pandas DataFrame, one row per (lens row, position): the position's token and the next one, the
        lens row's top tokens and their probabilities, entropy, KL(final || row) (nats), the ranks and
        probabilities of the final top-1 and the next token; with `compare_skip`, the skip run's rows too
        (`run`). Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()  # the extra is named before any work
        return frame(self.records())

    def records(self) -> list[dict]:
        """The rows of `to_dataframe()` as dicts."""
        out = []
        for lens in [self] + ([self.compare] if self.compare is not None else []):
            run = f"blocks {_ranges(lens.skipped_blocks)} skipped" if lens.skipped_blocks else "full model"
            for r in range(lens.n_rows):
                for j, p in enumerate(lens.positions):
                    known = lens.next_token[j] >= 0
                    out.append(
                        {
                            "run": run,
                            "row": lens.row_labels[r],
                            "hook": lens.rows[r],
                            "position": p,
                            "token": lens.str_tokens[p],
                            "next_token": lens.str_tokens[p + 1] if known else None,
                            "top_tokens": [str(t) for t in lens.top_str_tokens[r, j]],
                            "top_probs": [float(v) for v in lens.top_probs[r, j]],
                            "top1": str(lens.top_str_tokens[r, j, 0]),
                            "top1_prob": float(lens.top_probs[r, j, 0]),
                            "entropy": float(lens.entropy[r, j]),
                            "kl_to_final": float(lens.kl_to_final[r, j]),
                            "final_rank": int(lens.final_rank[r, j]),
                            "final_prob": float(lens.final_prob[r, j]),
                            "next_rank": int(lens.next_rank[r, j]) if known else None,
                            "next_prob": float(lens.next_prob[r, j]) if known else None,
                            "next_xent": float(lens.next_xent[r, j]) if known else None,
                        }
                    )
        return out

    def as_dict(self) -> dict:
        """JSON-ready: every [row][pos] array over `positions`; see UNITS."""
        known = self.next_token >= 0
        return {
            "model": self.model_name,
            "skipped_blocks": list(self.skipped_blocks),
            "tuned_lens": self.tuned_lens,
            "prompt": self.prompt,
            "tokens": list(self.tokens),
            "str_tokens": list(self.str_tokens),
            "positions": list(self.positions),
            "rows": list(self.rows),
            "row_labels": list(self.row_labels),
            "units": dict(UNITS),
            "top_ids": self.top_ids.tolist(),
            "top_str_tokens": self.top_str_tokens.tolist(),
            "top_probs": round_floats(self.top_probs),
            "entropy": round_floats(self.entropy),
            "kl_to_final": round_floats(self.kl_to_final),
            "final_token": self.final_token.tolist(),
            "final_token_rank": self.final_rank.tolist(),
            "final_token_prob": round_floats(self.final_prob),
            "final_emergence_row": self.emergence("final"),
            "next_token": [int(t) if t >= 0 else None for t in self.next_token],
            "next_token_rank": [
                [int(v) if k else None for v, k in zip(row, known)] for row in self.next_rank
            ],
            "next_token_prob": round_floats(self.next_prob),
            "next_token_xent": round_floats(self.next_xent),
            **({"compare": self.compare.as_dict()} if self.compare is not None else {}),
        }


def round_floats(a: np.ndarray, digits: int = 6):
    return np.round(a.astype(np.float64), digits).tolist()


def _ranges(ps: list[int]) -> str:
    from probes.core.layers import format_layers

    return format_layers(sorted(ps))


def check_position(position: int, n: int) -> int:
    """An absolute position in 0..n-1 for `position` (negative counts from the end)."""
    if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
        raise SpecError(f"position {position!r} is not an integer")
    p = int(position) + n if position < 0 else int(position)
    if not 0 <= p < n:
        raise SpecError(
            f"position {position} is out of range: the prompt has {n} tokens (0-{n - 1}, or -{n} to -1)"
        )
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


def _positions(positions, n: int) -> list[int]:
    if positions is None:
        return list(range(n))
    if isinstance(positions, (int, np.integer)) and not isinstance(positions, bool):
        positions = [positions]
    out = sorted({check_position(p, n) for p in positions})
    if not out:
        raise SpecError("no positions given")
    return out


def logit_lens(
    model,
    prompt,
    *,
    top: int = 5,
    positions=None,
    bos: bool = True,
    lens=None,
    compare_skip=None,
    mid: bool = False,
    translators=UNSET,
    progress=None,
) -> LensResult | list[LensResult]:
    """The logit lens of `prompt` (text, `FILE:path`, or token ids fed as they are).

    A list of prompts or a `probes.Dataset` gives a list of LensResults, one per prompt in order
    (`lens_over` averages a lens over a dataset instead).

    One forward pass keeps the residual stream's L+1 rows at the chosen `positions` (all by
    default; ints, negative from the end); the rows are then read out one at a time, so at most a
    few (positions, vocab) tensors exist at once, never (rows, positions, vocab). Works inside
    `probes.skip(...)`: a skipped block's row equals the row before it. `lens` (a TunedLens, a lens
    folder or 'bundled'; None: the logit lens) transforms each row but the last first.
    `compare_skip` (a layer spec) adds `result.compare`: the same tokens with those blocks skipped
    as well, read through the same lens. `mid=True` adds a row after each block's attention (its
    `resid_mid`, before the MLP): 2L+1 rows, read through the logit lens (a tuned lens has no translators
    for them). Over many prompts, `progress` (None: a bar where a person watches; True, False) shows
    how far it is.
    """
    from probes.core.layers import compare_blocks
    from probes.core.prompt import is_many, per_prompt, prompt_ids
    from probes.core.runner import runner_for
    from probes.core.skip import skip
    from probes.studies.lens.tuned import lens_of

    check_top(top)
    lens = lens_of(lens, model, translators)
    if mid and not isinstance(lens, LogitLens):
        raise SpecError(
            "mid=True reads the rows after attention through the logit lens; a tuned lens has no "
            "translators for them (leave lens=None)"
        )
    compared = None if compare_skip is None else compare_blocks(compare_skip, model.cfg.n_layers)
    if is_many(prompt):
        return per_prompt(
            lambda p: logit_lens(
                model,
                p,
                top=top,
                positions=positions,
                bos=bos,
                lens=lens,
                compare_skip=compare_skip,
                mid=mid,
            ),
            model,
            prompt,
            bos=bos,
            progress=progress,
        )
    text, ids = prompt_ids(model, prompt, bos=bos)
    cols = _positions(positions, len(ids))
    device = model.cfg.device or "cpu"
    index = torch.tensor(cols, device=device)
    next_ids = [ids[p + 1] if p + 1 < len(ids) else -1 for p in cols]

    def run() -> LensResult:
        batch = torch.tensor([ids], device=device)
        rows = mid_streams(model, batch) if mid else runner_for(model).streams(batch)  # L+1 (2L+1) rows
        resid = [x[0].index_select(0, index.to(x.device)) for x in rows]  # each (positions, d_model)
        return build_result(model, resid, ids, cols, next_ids, top, text, lens, mid=mid)

    result = run()
    if compared is not None:
        with skip(model, compared):
            result.compare = run()
    return result


def build_result(model, resid, ids, cols, next_ids, top, text, lens=None, mid: bool = False) -> LensResult:
    """A LensResult from residual rows (each (pos, d_model)) at positions `cols` of `ids`, through `lens`."""
    from probes.core.load import source_of
    from probes.core.prompt import str_tokens
    from probes.core.skip import skipped_blocks
    from probes.studies.lens.readout import readout, top_strings

    out = readout(model, resid, next_ids, top, lens)
    skipped = skipped_blocks(model)
    n_layers = model.cfg.n_layers
    return LensResult(
        prompt=text,
        tokens=list(ids),
        str_tokens=str_tokens(model, ids),
        positions=list(cols),
        rows=mid_row_hooks(n_layers) if mid else row_hooks(n_layers),
        row_labels=row_labels(n_layers, skipped, mid),
        top_str_tokens=top_strings(model, out["top_ids"]),
        next_token=np.array(next_ids, np.int64),
        d_vocab=model.cfg.d_vocab,
        model_name=source_of(model).name,
        skipped_blocks=skipped,
        tuned_lens=None if lens is None else lens.name,
        **out,
    )
