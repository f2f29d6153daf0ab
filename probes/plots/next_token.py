"""Bar charts of next-token distributions, one panel per sampling setting."""

from __future__ import annotations

import math

from probes.numbers import show_number
from probes.tokens import plot_text, show_token


def distribution_bars(report, top: int = 12):
    """One bar chart per setting (plus the raw T=1 distribution first, unless a setting is exactly it),
    side by side.

    `report` is a `NextTokenDistribution` (or anything with its attributes).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    raw_setting = any(_is_raw(d.config) for d in report.settings)
    panels = ([] if raw_setting else [report.raw]) + list(report.settings)
    cols = min(len(panels), 3)  # three panels a row stay readable at page width
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(3.6 * cols, 3.8 * rows), layout="constrained")
    n_vocab = report.d_vocab or report.raw.support  # the uniform level is 1 / vocabulary size
    floor = min(1e-5, 0.2 / n_vocab)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for i, (ax, d) in enumerate(zip(axes.flat, panels)):
        n = min(top, len(d.top_probs))
        labels = [show_token(t, 16, plot=True) for t in d.top_str_tokens[:n]]
        raw = d is report.raw or _is_raw(d.config)
        ax.bar(range(n), d.top_probs[:n], color="#888888" if raw else "#3b6fb6")
        ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
        # Log scale: T=10 spreads the mass so thin that a linear axis shows nothing at all.
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # decades suffice; minor ticks doubled the drawing time
        ax.set_ylim(floor, 1.5)
        ax.axhline(
            1 / n_vocab, color="#999999", ls="--", lw=0.8, zorder=3
        )  # named in the title, off the bars
        hidden = sum(1 for p in d.top_probs[:n] if p < floor)
        if hidden:
            ax.text(
                0.99,
                0.98,
                f"{hidden} bar(s) below {floor:.0e}",
                ha="right",
                va="top",
                fontsize=7,
                color="#555555",
                transform=ax.transAxes,
            )
        title = (
            "raw (T=1, no truncation)"
            if d is report.raw
            else d.config.label() + (" (the raw distribution)" if _is_raw(d.config) else "")
        )
        ax.set_title(
            f"{title}\nentropy {show_number(d.entropy, '.2f')} nats; {d.support:,} "
            f"token{'' if d.support == 1 else 's'} with p ≥ {d.support_min_prob:g}\n99% of the mass in "
            f"{d.tokens_for_99:,} token{'' if d.tokens_for_99 == 1 else 's'}",
            fontsize=8.5,
        )
        if i % cols == 0:
            ax.set_ylabel("probability (log scale)")
    prompt = report.prompt if len(report.prompt) <= 60 else "…" + report.prompt[-59:]
    fig.suptitle(
        f"Next-token distribution after {plot_text(repr(prompt))}\n"
        f"dashed line: uniform over the {n_vocab:,}-token vocabulary",
        fontsize=11,
    )
    return fig


def _is_raw(config) -> bool:
    """Whether a setting samples from the raw distribution itself: T=1, no top-k, no top-p."""
    return (
        not config.is_greedy
        and config.temperature == 1
        and config.top_k is None
        and config.top_p in (None, 1, 1.0)
    )
