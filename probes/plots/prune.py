"""Figures for the pruning study: runs compared in metrics and per-token KL; per-block importance."""

from __future__ import annotations

import numpy as np

from probes.numbers import distinct_labels, show_number
from probes.tokens import plot_text

# (key, panel title): a row for the generated text, a row for the held-out text (teacher-forced).
BAR_METRICS = [
    ("distinct_2", "distinct-2 of the text\n(higher: less repetitive)"),
    ("repeated_4gram_fraction", "repeated 4-grams\nof the text"),
    ("tf_top1_agreement", "top-1 agreement with full\non its continuation"),
    ("eval_loss", "held-out loss\n(nats/token)"),
    ("eval_kl", "held-out KL(full || run)\n(nats/token)"),
    ("eval_top1_agreement", "held-out top-1 agreement\nwith full"),
]
PER_ROW = 3


def run_label(run) -> str:
    """What a run skips and keeps: 'full: all 6 blocks', 'skip odd: keep 0,2,4'."""
    from probes.core.layers import format_layers

    if not run.skipped_blocks:
        return f"{run.name}: all {len(run.kept_blocks)} blocks"
    return f"skip {run.name}: keep {format_layers(run.kept_blocks)}"


def comparison_figure(comparison):
    """Metrics of each run as bars, and KL(full || run) along the full model's continuation."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    runs = comparison.runs
    names = [r.name if not r.skipped_blocks else f"skip {r.name}" for r in runs]
    colors = ["#444444"] + [f"C{i}" for i in range(len(runs) - 1)]
    rows = -(-len(BAR_METRICS) // PER_ROW)
    fig = Figure(figsize=(11, 3.2 * rows + 3.6), layout="constrained")
    grid = fig.add_gridspec(rows + 1, PER_ROW, height_ratios=[1] * rows + [1.15])
    for j, (key, label) in enumerate(BAR_METRICS):
        ax = fig.add_subplot(grid[j // PER_ROW, j % PER_ROW])
        vals = [r.metrics.get(key) for r in runs]
        vals = [np.nan if v is None else v for v in vals]
        ax.bar(range(len(runs)), vals, color=colors)
        ax.set_xticks(range(len(runs)), [plot_text(n) for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        for x, (v, shown) in enumerate(zip(vals, distinct_labels(vals))):
            if not np.isnan(v):
                ax.text(x, v, shown, ha="center", va="bottom", fontsize=7)
        if all(np.isnan(v) for v in vals):
            ax.text(
                0.5,
                0.5,
                "not measured",
                ha="center",
                va="center",
                fontsize=8,
                color="#555555",
                transform=ax.transAxes,
            )
        ax.margins(y=0.12)  # room for the value labels above the tallest bar
    ax = fig.add_subplot(grid[rows, :])
    for r, c in zip(runs[1:], colors[1:]):
        ax.plot(
            range(1, len(r.kl_per_token) + 1),
            r.kl_per_token,
            marker=".",
            color=c,
            label=plot_text(run_label(r)),
        )
    ax.set_xlabel("position in the full model's continuation (teacher-forced)")
    ax.set_ylabel("KL(full || pruned), nats")
    ax.set_ylim(bottom=0)
    # One key for every panel: each run by what it skips and what it keeps.
    ax.legend(
        [Patch(color=colors[0])] + ax.get_lines(),
        [plot_text(run_label(r)) for r in runs],
        loc="best",
        fontsize=8.5,
        ncols=1 if len(runs) <= 4 else 2,
    )
    prompt = comparison.prompt if len(comparison.prompt) <= 50 else comparison.prompt[:49] + "…"
    fig.suptitle(
        f"Full model vs skipped blocks, prompt {plot_text(repr(prompt))}\n{_heldout(comparison)}", fontsize=11
    )
    return fig


def _heldout(comparison) -> str:
    """'held-out: heldout.txt (30 texts, 2,048 tokens)', or that nothing was scored."""
    import os

    from probes.numbers import count

    if comparison.eval_text is None:
        return "held-out text: not scored"
    name = os.path.basename(comparison.eval_text.rstrip("/")) or comparison.eval_text
    texts = f"{count(comparison.eval_texts, 'text')}, " if (comparison.eval_texts or 1) != 1 else ""
    return f"held-out text: {plot_text(name[:50])} ({texts}{count(comparison.eval_tokens or 0, 'token')})"


def sweep_figure(sweep):
    """Per-block change in held-out loss when skipped alone, with Block Influence and angular distance."""
    from matplotlib.figure import Figure

    blocks = [b["block"] for b in sweep.blocks]
    fig = Figure(figsize=(max(7, 0.55 * len(blocks) + 4), 6), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    change = [b["loss_increase"] for b in sweep.blocks]
    # A block whose skipping lowers the loss is drawn apart: it is no cost to skip it.
    ax1.bar(blocks, change, color=["#3b6fb6" if v is None or v >= 0 else "#5a9e6f" for v in change])
    ax1.axhline(0, color="#444444", lw=0.8)
    for b, v, shown in zip(blocks, change, distinct_labels(change, sign="+")):
        if v is not None:
            ax1.text(b, v, shown, ha="center", va="bottom" if v >= 0 else "top", fontsize=7)
    ax1.margins(y=0.15)
    ax1.set_ylabel("loss change (nats/token)")
    lower = (
        "\n(green: skipping the block lowers the loss)"
        if any(v is not None and v < 0 for v in change)
        else ""
    )
    ax1.set_title(
        f"Skipping one block at a time: change in held-out loss from {show_number(sweep.base_loss, '.3f')}"
        f"{lower}",
        fontsize=10,
    )  # two lines: one would run past the figure's edge
    w = 0.4
    ax2.bar(
        np.array(blocks) - w / 2,
        [b["block_influence"] for b in sweep.blocks],
        w,
        label="Block Influence (1 - cos)",
    )
    ax2.bar(
        np.array(blocks) + w / 2,
        [b["angular_distance"] for b in sweep.blocks],
        w,
        label="angular distance / pi",
    )
    ax2.set_xticks(blocks)
    ax2.set_xlabel("block")
    ax2.legend(fontsize=8)
    ax2.set_title("How much each block changes the residual stream", fontsize=10)
    return fig
