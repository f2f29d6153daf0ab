"""The prune view's data: the full and pruned continuations aligned token by token, as prune.js reads them.

Reads what a `PruneComparison` holds (duck-typed: this module imports no study). Each run's first sample
is one row of tokens under the full model's; each position carries the run's KL(full ‖ run) on the full
continuation's prefix (teacher-forced, `kl_per_token`, the result's own numbers) and whether the run's top-1
there is the full model's (`top1_agreement_per_token`); the first position where the run's own token
differs from the full model's is its first divergence.
"""

from __future__ import annotations

import math

from probes.errors import SpecError
from probes.tokens import show_token
from probes.views.lens import blocks_text


def prune_view(result) -> dict:
    """The view data of `result` (a PruneComparison)."""
    runs = result.runs
    if not runs or any(not r.str_tokens for r in runs):
        raise SpecError("this comparison has no token strings (it was not made by compare_pruned)")
    full = runs[0].samples[0].tokens
    vocab, at = [], {}

    def index(token: str) -> int:
        if token not in at:
            at[token] = len(vocab)
            vocab.append(show_token(token))
        return at[token]

    rows, kl_max = [], 0.0
    for k, run in enumerate(runs):
        tokens = run.samples[0].tokens
        kl = list(run.kl_per_token)
        # A continuation longer than the context loses its first tokens from the scored window: the KL
        # covers the last len(kl) positions.
        offset = len(full) - len(kl)
        diverge = next((t for t, (a, b) in enumerate(zip(full, tokens)) if a != b), None)
        if diverge is None and len(tokens) != len(full):
            diverge = min(len(tokens), len(full))  # one stopped (at EOS) where the other went on
        kl_max = max([kl_max, *kl])
        rows.append(
            {
                "name": "full model" if k == 0 else f"skip {run.name}",
                "skipped": blocks_text(run.skipped_blocks),
                "tokens": [index(s) for s in run.str_tokens[0]],
                "kl": [None] * offset + kl,
                "agree": [None] * offset + list(run.top1_agreement_per_token or [None] * len(kl)),
                "diverge": diverge,
                "metrics": {k: run.metrics.get(k) for k in ("tf_kl", "tf_top1_agreement", "ppl_under_full")},
            }
        )
    notes = []
    if len(runs[0].samples) > 1:
        notes.append(f"Each run's first of {len(runs[0].samples)} samples is shown; the JSON has them all.")
    if any(row["kl"][:1] == [None] for row in rows[1:]):
        notes.append("The first positions fell outside the context when scored: they have no KL.")
    return {
        "kind": "prune",
        "title": "Full model and pruned runs, token by token",
        "prompt": result.prompt,
        "config": result.config.label(),
        "greedy": result.config.is_greedy,
        "vocab": vocab,
        "runs": rows,
        "kl_max": max(kl_max, 1e-3),
        "metrics": [
            {"key": "kl", "label": "KL(full ‖ run), nats"},
            {"key": "agree", "label": "top-1 agreement with the full model"},
        ],
        "notes": notes,
    }


def prune_page(result) -> str:
    """The aligned continuations as one self-contained HTML page."""
    from probes.views.page import document

    view = prune_view(result)
    return document(view["title"], view, "prune.js")


def page_height(view: dict) -> int:
    """A frame's height in px for `view` about 1,000 px wide (a report's, a notebook's): the tokens wrap
    about 6 to a line beside the details."""
    lines = math.ceil(max(len(r["tokens"]) for r in view["runs"]) / 6)
    return min(1600, 240 + lines * (22 * (len(view["runs"]) + 1) + 16))


def prune_frame(result, *, src: str | None = None) -> str:
    """The aligned continuations for a notebook cell: the page in a sandboxed iframe (`src`: its file)."""
    from probes.views.page import document, notebook_frame

    view = prune_view(result)
    page = None if src else document(view["title"], view, "prune.js")
    return notebook_frame(page, page_height(view), src=src, title=view["title"])
