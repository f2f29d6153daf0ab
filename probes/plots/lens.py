"""Logit-lens heatmaps: rows (layers) up, positions across, each cell labelled with its top-1 token."""

from __future__ import annotations

from probes.errors import SpecError
from probes.tokens import show_token

METRICS = {
    # metric: (what the colour shows in a prompt lens, in a generation lens)
    "prob": ("probability of the cell's top-1 token", "probability of the generated token"),
    "entropy": ("entropy (bits)", "entropy (bits)"),
    "kl": ("KL(final || row) (bits)", "KL(final || row) (bits)"),
    "rank": ("rank of the final row's top-1 token", "rank of the generated token"),
}


def check_metric(metric: str) -> str:
    """`metric` if it is one of METRICS, else a SpecError listing them."""
    if metric not in METRICS:
        raise SpecError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def _values(lens, metric: str, generated: bool):
    """(rows, pos) array to colour by, its norm and colormap."""
    import numpy as np
    from matplotlib import colors

    n_vocab = max(int(lens.d_vocab), 2)
    if metric == "prob":
        values = lens.next_prob if generated else lens.top_probs[..., 0]
        # Log scale from uniform (1/vocab) to certain: readable for weak and strong models alike.
        return values, colors.LogNorm(1.0 / n_vocab, 1.0, clip=True), "Blues"
    if metric == "entropy":
        return lens.entropy, colors.Normalize(0.0, float(np.log2(n_vocab))), "viridis"
    if metric == "kl":
        top = float(np.nanmax(lens.kl_to_final)) if lens.kl_to_final.size else 1.0
        return lens.kl_to_final, colors.PowerNorm(0.5, 0.0, max(top, 1e-3)), "magma_r"
    ranks = (lens.next_rank if generated else lens.final_rank).astype(float)
    return ranks, colors.LogNorm(1.0, float(n_vocab), clip=True), "viridis_r"


def _sizes(n_pos: int, n_rows: int):
    """Cell size in inches and whether cells carry text, so 30+ positions and 48 rows stay legible."""
    annotate = n_pos <= 80 and n_rows <= 64
    cell_w = 0.56 if annotate else max(0.06, min(0.3, 30.0 / n_pos))
    cell_h = 0.30 if annotate else max(0.06, min(0.3, 16.0 / n_rows))
    return cell_w, cell_h, annotate


def _draw(ax, lens, metric: str, *, generated: bool = False, norm=None, title: str | None = None):
    """One heatmap on `ax`; returns the image (for a shared colorbar)."""
    import numpy as np
    from matplotlib import colormaps

    values, default_norm, cmap_name = _values(lens, metric, generated)
    norm = norm or default_norm
    cmap = colormaps[cmap_name]
    n_rows, n_pos = values.shape
    shown = np.where(np.isfinite(values), values, np.nan)
    image = ax.imshow(shown, origin="lower", aspect="auto", interpolation="nearest", cmap=cmap, norm=norm)

    _, _, annotate = _sizes(n_pos, n_rows)
    if annotate:
        targets = lens.next_token
        size = 7 if n_pos <= 40 else 6
        for r in range(n_rows):
            for j in range(n_pos):
                v = shown[r, j]
                rgba = cmap(norm(v)) if np.isfinite(v) else (1, 1, 1, 1)
                dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                hit = targets[j] >= 0 and lens.top_ids[r, j, 0] == targets[j]
                ax.text(j, r, show_token(str(lens.top_str_tokens[r, j, 0]), 7, plot=True), ha="center", va="center",
                        fontsize=size, color="white" if dark else "black", fontweight="bold" if hit else "normal")

    # Rows: embed at the bottom, the model's output at the top; skipped blocks greyed.
    ax.set_yticks(range(n_rows), lens.row_labels, fontsize=8 if n_rows <= 32 else 6)
    for tick, label in zip(ax.get_yticklabels(), lens.row_labels):
        if "skipped" in label:
            tick.set_color("#999999")
    ax.set_ylabel("residual stream after block")

    step = max(1, int(np.ceil(n_pos / 120)))
    xs = list(range(0, n_pos, step))
    fed = [show_token(lens.str_tokens[lens.positions[j]], 10, plot=True) for j in xs]
    nxt = [show_token(lens_next_string(lens, j), 10, plot=True) for j in xs]
    font = 8 if n_pos <= 60 else 6
    # The other axis (top) shows what each position predicts in a prompt lens, what it was fed
    # in a generation lens; bold cells are those whose top-1 is the actual next token.
    bottom, top_labels = (nxt, fed) if generated else (fed, nxt)
    ax.set_xticks(xs, bottom, rotation=90, fontsize=font)
    ax.set_xlabel("generated token" if generated else "input token at position")
    top = ax.secondary_xaxis("top")
    top.set_xticks(xs, top_labels, rotation=90, fontsize=font)
    top.set_xlabel("fed before it" if generated else "next token (bold: top-1 got it)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return image


def lens_next_string(lens, j: int) -> str:
    p = lens.positions[j]
    return lens.str_tokens[p + 1] if p + 1 < len(lens.str_tokens) else "?"


def _size(n_pos: int, n_rows: int, panels: int = 1):
    cell_w, cell_h, _ = _sizes(n_pos, n_rows)
    return (panels * (n_pos * cell_w + 1.6) + 1.4, n_rows * cell_h + 3.2)


def _title(lens, what: str) -> str:
    skipped = ""
    if lens.skipped_blocks:
        from probes.core.layers import format_layers

        skipped = f", blocks {format_layers(lens.skipped_blocks)} skipped"
    if getattr(lens, "tuned_lens", None):  # read through translators: say which
        what = what.replace("Logit lens", "Tuned lens")
        skipped += f", tuned lens {lens.tuned_lens}"
    return f"{what}: {lens.model_name}{skipped}"


def lens_figure(lens, metric: str = "prob"):
    """The familiar logit-lens picture of a LensResult, coloured by `metric` (see METRICS)."""
    from matplotlib.figure import Figure

    check_metric(metric)
    n_rows, n_pos = lens.entropy.shape
    fig = Figure(figsize=_size(n_pos, n_rows), layout="constrained")
    ax = fig.subplots()
    image = _draw(ax, lens, metric, title=_title(lens, "Logit lens"))
    fig.colorbar(image, ax=ax, label=METRICS[metric][0], shrink=0.9, pad=0.01)
    return fig


def compare_figure(full, pruned, metric: str = "prob"):
    """Full and pruned lenses of the same prompt side by side, on one colour scale."""
    import numpy as np
    from matplotlib.figure import Figure

    check_metric(metric)
    if full.tokens != pruned.tokens or full.positions != pruned.positions:
        raise SpecError("compare_figure needs two lenses of the same tokens and positions")
    n_rows, n_pos = full.entropy.shape
    fig = Figure(figsize=_size(n_pos, n_rows, panels=2), layout="constrained")
    # Not sharey: each panel keeps its own row labels (the pruned one marks skipped blocks).
    axes = fig.subplots(1, 2)
    norm = _values(full, metric, False)[1]
    if metric == "kl":  # one scale for both: the larger of the two maxima
        from matplotlib import colors

        top = max(float(np.nanmax(full.kl_to_final)), float(np.nanmax(pruned.kl_to_final)), 1e-3)
        norm = colors.PowerNorm(0.5, 0.0, top)
    image = _draw(axes[0], full, metric, norm=norm, title=_title(full, "Full model"))
    _draw(axes[1], pruned, metric, norm=norm, title=_title(pruned, "Pruned"))
    axes[1].set_ylabel("")
    fig.colorbar(image, ax=list(axes), label=METRICS[metric][0], shrink=0.9, pad=0.01)
    return fig


def generation_figure(gen, metric: str = "prob"):
    """Each generated token's lens: generated text across, rows up; red boxes mark emergence.

    A red box spans a token's column from its emergence row to the top: the rows in which the
    generated token is (and stays) top-1. No box: it was never top-1 in the last row (sampled).
    """
    from matplotlib.figure import Figure

    check_metric(metric)
    lens = gen.lens
    n_rows, n_pos = lens.entropy.shape
    fig = Figure(figsize=_size(n_pos, n_rows), layout="constrained")
    ax = fig.subplots()
    image = _draw(ax, lens, metric, generated=True,
                  title=_title(lens, "Logit lens during generation (red: rows where the token is top-1 to the end)"))
    from matplotlib.patches import Rectangle

    for j, e in enumerate(gen.emergence):
        if e is not None:
            ax.add_patch(Rectangle((j - 0.46, e - 0.46), 0.92, n_rows - e - 0.08, fill=False,
                                   edgecolor="#d62728", linewidth=1.8))
    fig.colorbar(image, ax=ax, label=METRICS[metric][1], shrink=0.9, pad=0.01)
    return fig
