"""Bar charts of next-token distributions, one panel per sampling setting."""

from __future__ import annotations

import math


def _label(tok: str) -> str:
    shown = repr(tok)[1:-1]
    return shown if len(shown) <= 12 else shown[:11] + "…"


def distribution_bars(report, top: int = 12):
    """One bar chart per setting (plus the raw T=1 distribution first), side by side."""
    from matplotlib.figure import Figure

    panels = [report.raw] + list(report.settings)
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for i, (ax, d) in enumerate(zip(axes.flat, panels)):
        n = min(top, len(d.top_probs))
        labels = [_label(t) for t in d.top_tokens[:n]]
        ax.bar(range(n), d.top_probs[:n], color="#888888" if i == 0 else "#3b6fb6")
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        title = "raw (T=1, no truncation)" if i == 0 else d.settings.label()
        ax.set_title(title, fontsize=10)
        ax.text(0.98, 0.95, f"entropy {d.entropy_bits:.2f} bits\n99% mass: {d.tokens_for_99} tokens\nsupport: {d.support}",
                transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="#cccccc"))
        if i % cols == 0:
            ax.set_ylabel("probability")
    prompt = report.prompt if len(report.prompt) <= 60 else "…" + report.prompt[-59:]
    fig.suptitle(f"Next-token distribution after {prompt!r}", fontsize=11)
    return fig
