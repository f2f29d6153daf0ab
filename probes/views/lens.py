"""The lens view's data: a prompt or generation lens as the JSON its explorer (lens.js) reads.

Reads what a `LensResult` holds (duck-typed: this module imports no study). Each panel is one run of the
lens (the full model; a `compare_skip` run) through one lens (logit; tuned). Cells are flattened
[row][position], rows input first. Tokens are shown as `probes.tokens.show_token` shows them, each
distinct string once in `vocab` and referenced by index; numbers keep 4 significant digits. A view
too large for MAX_NUMBERS keeps every n-th position and says so on the page.
"""

from __future__ import annotations

import math

import numpy as np

from probes.errors import SpecError
from probes.tokens import show_token

# At about 10 bytes a number (its index into the vocabulary or its 4 digits, and its share of the token
# strings), 140k numbers keep a file under 1.5 MB. GPT-2 small over 256 positions with top 5 is 47k a panel:
# two panels (full and pruned) fit whole, four (logit and tuned too) show every 2nd position.
MAX_NUMBERS = 140_000
MAX_TOP = 10  # tokens listed per cell in a view; more makes the file grow, not the reading easier
DIGITS = 4  # significant digits kept of every number


def lens_view(result, others=(), *, generation=None) -> dict:
    """The view data of `result` (a LensResult) and `others` (the same tokens read through other lenses).

    `generation` (a GenerationLens) makes it the generation view: columns are generated tokens,
    coloured by what the model did with each, and each token's emergence row marked.
    """
    for other in others:
        if other.tokens != result.tokens or other.positions != result.positions or other.rows != result.rows:
            raise SpecError("others= must be lenses of the same tokens, positions and rows as the result")
        if result.compare is not None and (
            other.compare is None or other.compare.skipped_blocks != result.compare.skipped_blocks
        ):
            raise SpecError("others= must have the result's compare_skip run too (every lens, both runs)")
    lenses = [result, *others]
    if len({lens_name(lens) for lens in lenses}) < len(lenses):
        raise SpecError(
            "others= must each be read through a different lens (logit, or a tuned lens's folder)"
        )
    runs = list(lenses)
    if result.compare is not None:
        runs += [lens.compare for lens in lenses]
    n_rows, n_pos = result.entropy.shape
    k = min(result.top_ids.shape[-1], MAX_TOP)
    notes = []
    if result.top_ids.shape[-1] > k:
        notes.append(f"Each cell lists its top {k} tokens (the result holds {result.top_ids.shape[-1]}).")
    per_cell = 2 * k + 4
    keep = list(range(n_pos))
    if len(runs) * n_rows * n_pos * per_cell > MAX_NUMBERS:
        step = math.ceil(len(runs) * n_rows * n_pos * per_cell / MAX_NUMBERS)
        keep = list(range(n_pos - 1, -1, -step))[::-1]  # the last position always stays
        notes.append(
            f"Thinned to fit the file: every {_ordinal(step)} of {n_pos:,} positions is shown "
            f"({len(keep):,}); the result's JSON (as_dict, --json) has them all."
        )
    vocab = _Vocab()
    generated = generation is not None
    panels = [_panel(lens, keep, k, vocab, generated, lens_name(lens), run_name(lens)) for lens in runs]
    positions = [result.positions[j] for j in keep]
    fed = [vocab.index(result.str_tokens[p]) for p in positions]
    nxt = [vocab.index(result.str_tokens[p + 1]) if p + 1 < len(result.tokens) else None for p in positions]
    kl_max = max(float(np.nanmax(lens.kl_to_final, initial=0.0)) for lens in runs)
    title = "Lens" if others else "Tuned lens" if result.tuned_lens else "Logit lens"
    title = f"{title} of a generation" if generated else title
    return {
        "kind": "generation" if generated else "prompt",
        "title": f"{title}: {result.model_name}" if result.model_name else title,
        "model": result.model_name,
        "prompt": result.prompt,
        "text": generation.text if generated else None,
        "skipped": blocks_text(result.skipped_blocks),
        "rows": list(result.row_labels),  # the first panel's; each panel has its own
        "positions": positions,
        "fed": fed,
        "next": nxt,
        "k": k,
        "vocab": vocab.strings,
        "metrics": _metrics(result.d_vocab, kl_max, generated),
        "panels": panels,
        "notes": notes,
    }


def _metrics(d_vocab: int, kl_max: float, generated: bool) -> list[dict]:
    """How the explorer colours each metric: its scale from `lo` to `hi`, and which end is bright.

    Bright is always "like the final answer" (probable, certain, close to the final row, top rank).
    """
    n = max(int(d_vocab), 2)
    what = "the generated token" if generated else "the true next token"
    return [
        {
            "key": "prob",
            "label": f"probability of {'the generated token' if generated else 'the final top-1 token'}",
            "scale": "log",
            "lo": 1.0 / n,
            "hi": 1.0,
            "bright": "high",
        },
        {
            "key": "kl",
            "label": "KL(final ‖ row), nats",
            "scale": "sqrt",
            "lo": 0.0,
            "hi": max(kl_max, 1e-3),
            "bright": "low",
        },
        {
            "key": "entropy",
            "label": "entropy, nats",
            "scale": "linear",
            "lo": 0.0,
            "hi": math.log(n),
            "bright": "low",
        },
        {
            "key": "rank",
            "label": f"rank of {what}",
            "scale": "log",
            "lo": 1.0,
            "hi": float(n),
            "bright": "low",
        },
    ]


def _panel(lens, keep: list[int], k: int, vocab: _Vocab, generated: bool, name: str, run: str) -> dict:
    """One run of the lens at columns `keep`: top-k tokens and probabilities, and each metric, per cell."""
    top_ids = lens.top_str_tokens[:, keep, :k]  # (rows, pos, k) strings
    prob = lens.next_prob if generated else lens.final_prob
    emergence = lens.emergence("next" if generated else "final")
    return {
        "lens": name,
        "run": run,
        "rows": list(lens.row_labels),  # a skip run marks its own skipped blocks
        "top": [vocab.index(s) for s in top_ids.reshape(-1)],
        "p": _numbers(lens.top_probs[:, keep, :k]),
        "prob": _numbers(prob[:, keep]),
        "kl": _numbers(lens.kl_to_final[:, keep]),
        "entropy": _numbers(lens.entropy[:, keep]),
        "rank": [int(v) if v > 0 else None for v in lens.next_rank[:, keep].reshape(-1)],
        "emergence": [emergence[j] for j in keep],
    }


def _numbers(a: np.ndarray) -> list[float | None]:
    """`a` flattened, each value to DIGITS significant digits; NaN (unknown) as None."""
    return [float(f"{v:.{DIGITS}g}") if math.isfinite(v) else None for v in np.asarray(a, float).reshape(-1)]


class _Vocab:
    """Each distinct token string, shown, once; cells refer to it by index."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._at: dict[str, int] = {}

    def index(self, token) -> int:
        token = str(token)
        if token not in self._at:
            self._at[token] = len(self.strings)
            self.strings.append(show_token(token))
        return self._at[token]


def lens_name(lens) -> str:
    """How a view names the lens a result was read through."""
    return f"tuned lens ({lens.tuned_lens})" if lens.tuned_lens else "logit lens"


def run_name(lens) -> str:
    """How a view names a run: the full model, or the blocks it skipped."""
    return f"blocks {blocks_text(lens.skipped_blocks)} skipped" if lens.skipped_blocks else "full model"


def blocks_text(blocks) -> str:
    from probes.core.layers import format_layers

    return format_layers(sorted(blocks)) if blocks else ""


def _ordinal(n: int) -> str:
    return {2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def page_height(view: dict) -> int:
    """A notebook frame's height in px for `view`: the grid's rows and the details beside it."""
    grids = 2 if any(p["run"] != view["panels"][0]["run"] for p in view["panels"]) else 1
    return min(1200, 260 + grids * (len(view["rows"]) * 22 + 90))


def lens_page(result, others=(), *, generation=None) -> str:
    """The lens explorer of `result` as one self-contained HTML page."""
    from probes.views.page import document

    view = lens_view(result, others, generation=generation)
    return document(view["title"], view, "lens.js")


def lens_frame(result, *, generation=None, src: str | None = None) -> str:
    """The lens explorer for a notebook cell: the page in a sandboxed iframe sized to its grid (`src`: the
    page's file, written beside the frame's page, instead of the page itself)."""
    from probes.views.page import document, notebook_frame

    view = lens_view(result, generation=generation)
    page = None if src else document(view["title"], view, "lens.js")
    return notebook_frame(page, page_height(view), src=src, title=view["title"])
