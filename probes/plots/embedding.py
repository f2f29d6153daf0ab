"""Embedding figures: word norms as bars, cosine heatmaps, the vocabulary's norms and PCA cloud with the words
marked, position norms."""

from __future__ import annotations

from probes.numbers import show_number

# One colour per group, stable across figures; custom groups fall back to grey.
GROUP_COLOURS = {"common": "#3b6fb6", "rare": "#d0612a", "words": "#4a8f3c"}


def _colour(group: str) -> str:
    return GROUP_COLOURS.get(group, "#777777")


def norm_bars(labels, groups, norms, other_norms, form, other, median, title):
    """Two bars per word: its vector's norm in token form `form`, and in form `other` (hatched) for
    comparison."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(labels)
    fig = Figure(figsize=(max(6.5, 0.75 * n + 2.5), 4.6), layout="constrained")
    ax = fig.subplots()
    x = list(range(n))
    colours = [_colour(g) for g in groups]
    ax.bar([i - 0.2 for i in x], norms, width=0.4, color=colours)
    ax.bar(
        [i + 0.2 for i in x], other_norms, width=0.4, color=colours, alpha=0.35, hatch="//", edgecolor=colours
    )
    ax.axhline(median, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=9)
    ax.set_ylabel("L2 norm of the word's vector")
    handles = [Patch(color=_colour(g), label=g) for g in dict.fromkeys(groups)]
    handles += [
        Patch(facecolor="#bbbbbb", label=f"token form {form} (used)"),
        Patch(facecolor="#bbbbbb", alpha=0.35, hatch="//", edgecolor="#777777", label=f"token form {other}"),
        ax.lines[0],
    ]
    ax.lines[0].set_label(f"vocabulary median {median:.3g}")
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title, fontsize=10, wrap=True)
    return fig


def cosine_heatmaps(matrices, title):
    """One annotated heatmap per entry; `matrices` maps a panel title -> (row labels, column labels,
    matrix)."""
    from matplotlib.figure import Figure

    k = len(matrices)
    size = max(max(len(r), len(c)) for r, c, _ in matrices.values())
    side = min(max(3.6, 0.6 * size + 2.0), 15 / k)  # each panel square; the figure at most 16 in wide
    longest = max(len(t) for r, c, _ in matrices.values() for t in (*r, *c))
    # Room below for the rotated tick labels, so constrained layout never has to cut them.
    fig = Figure(figsize=(side * k + 1.0, side + 0.3 + 0.035 * longest), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    image = None
    for ax, (name, (rows, cols, mat)) in zip(axes, matrices.items()):
        # A fixed [-1, 1] range so every panel's colours can be compared directly.
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        for i, row in enumerate(mat):
            for j, v in enumerate(row):
                ax.text(
                    j,
                    i,
                    show_number(v, ".2f"),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(v) > 0.6 else "black",
                    in_layout=False,
                )  # inside its cell
        ax.set_title(name, fontsize=10, color=GROUP_COLOURS.get(name, "black"))
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
    fig.suptitle(title, fontsize=10)
    return fig


def norm_scatter(vocab_norms, marks, median, title):
    """Every token's norm against its id (for BPE, roughly its merge and so frequency rank); `marks` are (id,
    norm, label or None, group)."""
    from matplotlib.figure import Figure

    from probes.plots.labels import hidden_note, place_labels

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.subplots()
    ids = range(len(vocab_norms))
    ax.scatter(
        ids, vocab_norms, s=2, color="#999999", alpha=0.4, linewidths=0, rasterized=True, label="all tokens"
    )
    ax.axhline(median, color="black", linestyle="--", linewidth=1, label=f"median {median:.3g}")
    _mark_groups(ax, [(i, n, g) for i, n, _, g in marks])
    ax.set_xlabel("token id (for BPE, a rough proxy for frequency rank: low ids are bytes and early merges)")
    ax.set_ylabel("L2 norm of the embedding row")
    ax.set_xlim(-0.01 * len(vocab_norms), 1.01 * len(vocab_norms))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title, fontsize=10)
    labelled = [m for m in marks if m[2] is not None]
    _, hidden = place_labels(
        ax,
        [(i, n) for i, n, _, _ in labelled],
        [t for _, _, t, _ in labelled],
        [_colour(g) for *_, g in labelled],
        fontsize=7.5,
    )
    hidden_note(ax, hidden)
    return fig


def pca_scatter(coords, points, explained, title):
    """The vocabulary's rows in their first two principal components (grey), `points` (x, y, label, group)
    marked."""
    from matplotlib.figure import Figure

    from probes.plots.labels import hidden_note, place_labels

    fig = Figure(figsize=(8, 6.2), layout="constrained")
    ax = fig.subplots()
    xy = coords.tolist() if hasattr(coords, "tolist") else coords
    ax.scatter(
        [p[0] for p in xy],
        [p[1] for p in xy],
        s=2,
        color="#999999",
        alpha=0.35,
        linewidths=0,
        rasterized=True,
        label=f"all {len(xy)} tokens",
    )
    _mark_groups(ax, [(x, y, g) for x, y, _, g in points])
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f}% of the variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f}% of the variance)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title, fontsize=10)
    _, hidden = place_labels(
        ax, [(x, y) for x, y, _, _ in points], [t for _, _, t, _ in points], [_colour(g) for *_, g in points]
    )
    hidden_note(ax, hidden)
    return fig


def _mark_groups(ax, marks):
    """The chosen words' points, one colour and one legend entry per group; `marks` are (x, y, group)."""
    for group in dict.fromkeys(g for *_, g in marks):
        mine = [(x, y) for x, y, g in marks if g == group]
        ax.scatter(
            [x for x, _ in mine],
            [y for _, y in mine],
            s=36,
            color=_colour(group),
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=group,
        )


def position_norms(norms, title):
    """The norm of each position's row of wpe."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(range(len(norms)), norms, color="#3b6fb6", linewidth=1.2)
    ax.set_xlabel("position")
    ax.set_ylabel("L2 norm of the position embedding")
    ax.set_xlim(0, max(1, len(norms) - 1))
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    return fig
