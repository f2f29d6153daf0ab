"""Embedding figures: word norms as bars, cosine heatmaps per group, vocabulary norm scatter, position norms."""

from __future__ import annotations

# One colour per group, stable across figures; custom groups fall back to grey.
GROUP_COLOURS = {"common": "#3b6fb6", "rare": "#d0612a", "words": "#4a8f3c"}


def _colour(group: str) -> str:
    return GROUP_COLOURS.get(group, "#777777")


def norm_bars(labels, groups, norms, space_norms, median, title):
    """Two bars per word: the id used (the word as given, first token) and the leading-space form's first token."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(labels)
    fig = Figure(figsize=(max(6.0, 0.75 * n + 2), 4.4), layout="constrained")
    ax = fig.subplots()
    x = list(range(n))
    colours = [_colour(g) for g in groups]
    ax.bar([i - 0.2 for i in x], norms, width=0.4, color=colours)
    ax.bar([i + 0.2 for i in x], space_norms, width=0.4, color=colours, alpha=0.35, hatch="//", edgecolor=colours)
    ax.axhline(median, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=9)
    ax.set_ylabel("L2 norm of the embedding row")
    handles = [Patch(color=_colour(g), label=g) for g in dict.fromkeys(groups)]
    handles += [
        Patch(facecolor="#bbbbbb", label="word as given (id used)"),
        Patch(facecolor="#bbbbbb", alpha=0.35, hatch="//", edgecolor="#777777", label="with a leading space"),
        ax.lines[0],
    ]
    ax.lines[0].set_label(f"vocabulary median {median:.3g}")
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title, fontsize=10)
    return fig


def cosine_heatmaps(matrices, title):
    """One annotated heatmap per group; `matrices` maps group -> (labels, (n, n) cosine matrix)."""
    from matplotlib.figure import Figure

    k = len(matrices)
    size = max(len(labels) for labels, _ in matrices.values())
    side = max(3.6, 0.7 * size + 1.8)
    fig = Figure(figsize=(side * k + 1.0, side), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    image = None
    for ax, (group, (labels, mat)) in zip(axes, matrices.items()):
        # A fixed [-1, 1] range so the two groups' colours can be compared directly.
        image = ax.imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1)
        ticks = list(range(len(labels)))
        ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
        for i, row in enumerate(mat):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 else "black")
        ax.set_title(group, fontsize=10, color=_colour(group))
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="cosine similarity")
    fig.suptitle(title, fontsize=10)
    return fig


def norm_scatter(vocab_norms, marks, median, title):
    """Every token's norm against its id (for BPE, roughly its merge and so frequency rank); `marks` are (id, norm, word, group)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.6), layout="constrained")
    ax = fig.subplots()
    ids = range(len(vocab_norms))
    ax.scatter(ids, vocab_norms, s=2, color="#999999", alpha=0.4, linewidths=0, rasterized=True, label="all tokens")
    ax.axhline(median, color="black", linestyle="--", linewidth=1, label=f"median {median:.3g}")
    seen = set()
    for token_id, norm, word, group in marks:
        ax.scatter([token_id], [norm], s=36, color=_colour(group), edgecolors="black", linewidths=0.5, zorder=3,
                   label=group if group not in seen else None)
        seen.add(group)
    lo, hi = min(vocab_norms), max(vocab_norms)
    for (token_id, norm, word, group), (tx, ty) in zip(marks, _label_spots(marks, len(vocab_norms), lo, hi)):
        ax.annotate(word, (token_id, norm), xytext=(tx, ty), textcoords="data", fontsize=7, color=_colour(group),
                    va="center", arrowprops=dict(arrowstyle="-", color=_colour(group), linewidth=0.5, alpha=0.7))
    ax.set_xlabel("token id (for BPE, a rough proxy for frequency rank: low ids are bytes and early merges)")
    ax.set_ylabel("L2 norm of the embedding row")
    ax.set_xlim(-0.01 * len(vocab_norms), 1.01 * len(vocab_norms))
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title, fontsize=10)
    return fig


def _label_spots(marks, n_vocab, lo, hi):
    """Label positions (data coordinates) that do not overlap: marks with nearby ids share one column.

    Words whose first token is a single letter all sit at ids below ~100, so naive labels pile up.
    """
    height = 0.045 * (hi - lo)  # one label line, in norm units
    order = sorted(range(len(marks)), key=lambda i: marks[i][0])
    clusters, current = [], [order[0]] if order else []
    for i in order[1:]:
        if marks[i][0] - marks[current[-1]][0] <= 0.04 * n_vocab:
            current.append(i)
        else:
            clusters.append(current)
            current = [i]
    if current:
        clusters.append(current)
    spots = [None] * len(marks)
    for cluster in clusters:
        cluster.sort(key=lambda i: -marks[i][1])  # highest norm labelled on top
        x = max(marks[i][0] for i in cluster) + 0.02 * n_vocab
        centre = sum(marks[i][1] for i in cluster) / len(cluster)
        top = centre + height * (len(cluster) - 1) / 2
        for k, i in enumerate(cluster):
            spots[i] = (x, top - k * height)
    return spots


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
