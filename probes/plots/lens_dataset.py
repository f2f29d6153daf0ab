"""The dataset lens as small multiples: one panel per metric against the lens row, bands for the intervals."""

from __future__ import annotations

import os

from probes.numbers import count
from probes.tokens import model_label, plot_text

_TITLES = {
    "kl_to_final": "KL(final ‖ row), nats",
    "entropy": "entropy, nats",
    "next_xent": "cross-entropy on the next token, nats",
    "next_accuracy": "top-1 accuracy on the next token",
    "final_agreement": "top-1 agreement with final",
}


def dataset_lens_figure(lens, *, others=(), label: str | None = None):
    """A 2x3 grid: five metric panels and a key; `lens.compare` (if any) and `others` drawn beside `lens`.

    `lens` is a `DatasetLens` (or anything with its attributes, `metrics` and `metric()`); `others` is
    a sequence of (label, DatasetLens) over the same rows, e.g. a tuned lens beside the logit lens.
    Each line is the pooled mean; its band is the bootstrap interval. Hollow
    markers are skipped blocks (their row repeats the one before).
    """
    import numpy as np
    from matplotlib.figure import Figure

    lines = [(label or _name(lens), lens)]
    if lens.compare is not None:
        lines.append(
            (
                f"{label + ', ' if label else ''}{_name(lens.compare)}, against the unpruned final",
                lens.compare,
            )
        )
    lines += list(others)
    n_rows = lens.n_rows
    fig = Figure(figsize=(10.5, 6.2), layout="constrained")
    axes = fig.subplots(2, 3, sharex=True)
    x = np.arange(n_rows)
    ticks = ["emb"] + [str(i) for i in range(n_rows - 1)]
    metrics = lens.metrics  # name -> (what it is, unit), in the order of the result's arrays
    for ax, name in zip(axes.flat, metrics):
        for i, (text, item) in enumerate(lines):
            mean, low, high = item.metric(name)
            color = "#333333" if i == 0 else f"C{i - 1}"
            ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
            ax.plot(x, mean, color=color, linewidth=1.6, label=text)
            skipped = np.array([r > 0 and r - 1 in item.skipped_blocks for r in range(n_rows)])
            ax.plot(x[~skipped], mean[~skipped], "o", color=color, markersize=3.5)
            ax.plot(x[skipped], mean[skipped], "o", markerfacecolor="white", color=color, markersize=3.5)
        ax.set_title(_TITLES[name], fontsize=9.5)
        if name == "final_agreement":  # it reaches 1 at the output row
            ax.set_ylim(-0.02, 1.02)
        else:  # a weak model's accuracy stays low: use the panel's height for it
            top = max(float(np.nanmax(item.metric(name)[2])) for _, item in lines)
            top = top if np.isfinite(top) and top > 0 else 1.0
            ax.set_ylim(0, min(1.02, 1.12 * top + 0.01) if metrics[name][1] == "fraction" else 1.08 * top)
        ax.grid(alpha=0.3, linewidth=0.5)
        ax.tick_params(labelsize=8)
    step = max(1, -(-n_rows // 14))  # at most ~14 tick labels, so 49 rows stay readable
    for ax in axes[1]:
        ax.set_xticks(x[::step], ticks[::step])
        ax.set_xlabel("lens row (emb: the embedding; i: after block i)", fontsize=8.5)
    axes[0, 2].tick_params(labelbottom=True)
    key = axes[1, 2]
    key.axis("off")
    handles, texts = axes[0, 0].get_legend_handles_labels()
    key.legend(handles, texts, loc="upper left", fontsize=8.5, frameon=False)
    hollow = any(item.skipped_blocks for _, item in lines)
    key.text(0.0, 0.45, _caption(lens, hollow), fontsize=8, va="top", transform=key.transAxes, wrap=True)
    what = "Tuned lens" if getattr(lens, "tuned_lens", None) else "Logit lens"
    what += "".join(f" and {text}" for text, _ in others)
    name = plot_text(model_label(lens.model_name, 60))
    fig.suptitle(f"{what} over {count(lens.n_texts, 'text')}, model {name}", fontsize=11)
    return fig


def _name(lens) -> str:
    from probes.core.layers import format_layers

    if not lens.skipped_blocks:
        return "full model"
    return f"blocks {format_layers(lens.skipped_blocks)} skipped"


FEW_TEXTS = 10  # below this many texts a bootstrap over texts says little; the caption says so


def _caption(lens, hollow: bool) -> str:
    source = os.path.basename(lens.source.rstrip("/")) or lens.source
    few = f"\n(only {count(lens.n_texts, 'text')}: rough bands)" if lens.n_texts < FEW_TEXTS else ""
    return (
        f"dataset: {source[:40]}\n{count(lens.n_texts, 'text')}, {count(lens.n_windows, 'window')}, "
        f"{count(lens.n_tokens, 'token')}\nlines: mean over every position\nbands: {lens.level:.0%} "
        f"bootstrap interval\n(resampling texts, {lens.n_boot:,} replicates){few}"
        + ("\nhollow markers: skipped blocks" if hollow else "")
    )
