"""Figures for the pruning study: runs compared in metrics and per-token KL; per-block importance."""

from __future__ import annotations

import numpy as np

BAR_METRICS = [
    ("distinct_2", "distinct-2 (higher: less repetitive)"),
    ("repeated_4gram_fraction", "repeated 4-grams"),
    ("tf_top1_agreement", "top-1 agreement with full"),
    ("eval_loss", "held-out loss (nats/token)"),
]


def comparison_figure(comparison):
    """Metrics of each run as bars, and KL(full || run) along the full model's continuation."""
    from matplotlib.figure import Figure

    runs = comparison.runs
    names = [r.name for r in runs]
    colors = ["#444444"] + [f"C{i}" for i in range(len(runs) - 1)]
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    grid = fig.add_gridspec(2, len(BAR_METRICS))
    for j, (key, label) in enumerate(BAR_METRICS):
        ax = fig.add_subplot(grid[0, j])
        vals = [r.metrics.get(key) for r in runs]
        vals = [np.nan if v is None else v for v in vals]
        ax.bar(range(len(runs)), vals, color=colors)
        ax.set_xticks(range(len(runs)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        for x, v in enumerate(vals):
            if not np.isnan(v):
                ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax = fig.add_subplot(grid[1, :])
    for r, c in zip(runs[1:], colors[1:]):
        ax.plot(range(1, len(r.kl_per_token) + 1), r.kl_per_token, marker=".", color=c, label=f"skip {r.name}")
    ax.set_xlabel("position in the full model's continuation (teacher-forced)")
    ax.set_ylabel("KL(full || pruned), nats")
    ax.set_ylim(bottom=0)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    fig.suptitle(f"Full model vs skipped blocks, prompt {comparison.prompt[:50]!r}", fontsize=11)
    return fig


def sweep_figure(sweep):
    """Per-block loss increase when skipped alone, with Block Influence and angular distance."""
    from matplotlib.figure import Figure

    blocks = [b["block"] for b in sweep.blocks]
    fig = Figure(figsize=(max(7, 0.55 * len(blocks) + 4), 6), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    inc = [b["loss_increase"] for b in sweep.blocks]
    ax1.bar(blocks, inc, color="#3b6fb6")
    for b, v in zip(blocks, inc):
        ax1.text(b, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
    ax1.set_ylabel("loss increase (nats/token)")
    ax1.set_title(f"Skipping one block at a time (full-model held-out loss {sweep.base_loss:.3f})", fontsize=10)
    w = 0.4
    ax2.bar(np.array(blocks) - w / 2, [b["block_influence"] for b in sweep.blocks], w, label="Block Influence (1 - cos)")
    ax2.bar(np.array(blocks) + w / 2, [b["angular_distance"] for b in sweep.blocks], w, label="angular distance / pi")
    ax2.set_xticks(blocks)
    ax2.set_xlabel("block")
    ax2.legend(fontsize=8)
    ax2.set_title("How much each block changes the residual stream", fontsize=10)
    return fig
