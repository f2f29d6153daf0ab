"""Logit-lens heatmaps: rows (layers) up, positions across, each cell labelled with its top-1 token."""

from __future__ import annotations

from probes.core.layers import format_layers
from probes.errors import SpecError
from probes.tokens import model_label, plot_text, show_token

METRICS = {
    # metric: (what the colour shows in a prompt lens, in a generation lens)
    "prob": ("probability of the cell's top-1 token", "probability of the generated token"),
    "entropy": ("entropy (nats)", "entropy (nats)"),
    "kl": ("KL(final || row) (nats)", "KL(final || row) (nats)"),
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


# Columns per panel row: at 0.56 in a cell, 14 columns and the labels make a figure about 10 in
# wide, which a page shows at close to full size, so the 7-pt cell text stays legible.
PER_ROW = 14
# Columns per panel row when cells carry no text (over 80 positions): 64 cells of at most 0.3 in.
WIDE_ROW = 64


def _sizes(n_pos: int, n_rows: int):
    """Cell size in inches and whether cells carry text, so 30+ positions and 48 rows stay legible."""
    annotate = n_pos <= 80 and n_rows <= 64
    cell_w = 0.56 if annotate else max(0.06, min(0.3, 30.0 / n_pos))
    cell_h = 0.30 if annotate else max(0.06, min(0.3, 16.0 / n_rows))
    return cell_w, cell_h, annotate


def _chunks(n_pos: int, n_rows: int, per_row: int | None) -> list[list[int]]:
    """The columns of each panel row, `per_row` at a time.

    Without `per_row`, as few rows as PER_ROW columns allow (WIDE_ROW when cells are too small to
    carry text), evened out: 30 positions are three rows of 10, not 14 + 14 + 2, and 256 positions
    four rows of 64, not one strip 30 inches wide.
    """
    if per_row is None:
        most = PER_ROW if _sizes(n_pos, n_rows)[2] else WIDE_ROW
        per_row = -(-n_pos // -(-n_pos // most))
    if n_pos <= per_row:
        return [list(range(n_pos))]
    return [list(range(s, min(s + per_row, n_pos))) for s in range(0, n_pos, per_row)]


def _draw(
    ax,
    lens,
    metric: str,
    *,
    cols: list[int],
    width: int,
    generated: bool = False,
    norm=None,
    title: str | None = None,
):
    """One heatmap of columns `cols` on `ax`, `width` columns wide (a short last row keeps the cell size);
    returns the image."""
    import numpy as np
    from matplotlib import colormaps

    values, default_norm, cmap_name = _values(lens, metric, generated)
    norm = norm or default_norm
    cmap = colormaps[cmap_name]
    n_rows, n_all = values.shape
    shown = np.where(np.isfinite(values), values, np.nan)[:, cols]  # (rows, len(cols))
    image = ax.imshow(
        shown,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        norm=norm,
        extent=(-0.5, len(cols) - 0.5, -0.5, n_rows - 0.5),
    )
    ax.set_xlim(-0.5, width - 0.5)

    _, _, annotate = _sizes(n_all, n_rows)
    if annotate:
        targets = lens.next_token
        size = 7
        for r in range(n_rows):
            for x, j in enumerate(cols):
                v = shown[r, x]
                rgba = cmap(norm(v)) if np.isfinite(v) else (1, 1, 1, 1)
                dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
                hit = targets[j] >= 0 and lens.top_ids[r, j, 0] == targets[j]
                ax.text(
                    x,
                    r,
                    show_token(str(lens.top_str_tokens[r, j, 0]), 7, plot=True),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if dark else "black",
                    fontweight="bold" if hit else "normal",
                    in_layout=False,
                )  # inside its cell: constrained layout need not measure 400 texts

    # Rows: embed at the bottom, the model's output at the top; skipped blocks greyed.
    ax.set_yticks(range(n_rows), lens.row_labels, fontsize=8 if n_rows <= 32 else 6)
    for tick, label in zip(ax.get_yticklabels(), lens.row_labels):
        if "skipped" in label:
            tick.set_color("#999999")
    ax.set_ylabel("stream after block", fontsize=9)

    step = max(1, int(np.ceil(len(cols) / 120)))
    xs = list(range(0, len(cols), step))
    fed = [show_token(lens.str_tokens[lens.positions[cols[x]]], 10, plot=True) for x in xs]
    nxt = [show_token(lens_next_string(lens, cols[x]), 10, plot=True) for x in xs]
    font = 8 if len(cols) <= 60 else 6
    if generated:
        # The generated text reads along the bottom; what was fed is the token before, so no second axis.
        ax.set_xticks(xs, nxt, rotation=90, fontsize=font)
        ax.set_xlabel(f"generated tokens {cols[0] + 1}-{cols[-1] + 1}", fontsize=8)
    else:
        # Bold cells are those whose top-1 is the actual next token, shown on the top axis.
        ax.set_xticks(xs, fed, rotation=90, fontsize=font)
        # The positions as ranges: chosen ones (--position 2-4,-1) need not be contiguous.
        where = format_layers([lens.positions[c] for c in cols])
        ax.set_xlabel(f"input token at position{'s' * (len(cols) > 1)} {where}", fontsize=8)
        top = ax.secondary_xaxis("top")
        top.set_xticks(xs, nxt, rotation=90, fontsize=font)
        top.set_xlabel("next token (bold: top-1 got it)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10 if not generated else 8.5, loc="left")
    return image


def lens_next_string(lens, j: int) -> str:
    p = lens.positions[j]
    return lens.str_tokens[p + 1] if p + 1 < len(lens.str_tokens) else "?"


def _panel_size(lens, chunks: list[list[int]], generated: bool) -> tuple[float, float]:
    """(width, height) in inches of the panels of one lens, wrapped into `chunks`."""
    n_rows, n_pos = lens.entropy.shape
    cell_w, cell_h, _ = _sizes(n_pos, n_rows)
    labels = 1.1 if generated else 2.0  # rotated tick labels: one axis of them, or two
    return max(len(c) for c in chunks) * cell_w, len(chunks) * (n_rows * cell_h + labels)


def _title(lens, what: str) -> str:
    if getattr(lens, "tuned_lens", None):  # rows read through a tuned lens say so
        what = what.replace("Logit lens", "Tuned lens") if "Logit lens" in what else f"{what} (tuned lens)"
    skipped = ""
    if lens.skipped_blocks:
        skipped = f", blocks {format_layers(lens.skipped_blocks)} skipped"
    return f"{what}: {plot_text(model_label(lens.model_name))}{skipped}"


def _panels(
    fig, lenses: list, titles: list[str], metric: str, *, generated: bool, per_row: int | None, norm=None
):
    """Each lens as rows of panels, stacked in order; returns the axes (per lens, its panels) and the last
    image."""
    chunks = [_chunks(*reversed(lens.entropy.shape), per_row) for lens in lenses]
    width = max(len(c) for cs in chunks for c in cs)
    axes = fig.subplots(sum(len(c) for c in chunks), 1, squeeze=False)[:, 0]
    out, k, image = [], 0, None
    for lens, title, cs in zip(lenses, titles, chunks):
        mine = list(axes[k : k + len(cs)])
        for n, (ax, cols) in enumerate(zip(mine, cs)):
            image = _draw(
                ax,
                lens,
                metric,
                cols=cols,
                width=width,
                generated=generated,
                norm=norm,
                title=title if n == 0 else None,
            )
        out.append((mine, cs))
        k += len(cs)
    return out, image


def _figure(lenses: list, generated: bool, per_row: int | None):
    from matplotlib.figure import Figure

    sizes = [_panel_size(lens, _chunks(*reversed(lens.entropy.shape), per_row), generated) for lens in lenses]
    # Row labels, y label and colorbar beside the cells; at least wide enough for a panel's title, as a
    # few chosen positions (--position) make narrow panels.
    width = max(max(w for w, _ in sizes) + 2.8, 6.4)
    height = sum(h for _, h in sizes) + 0.5 * len(lenses) + 0.4
    return Figure(figsize=(width, height), layout="constrained")


def lens_figure(lens, metric: str = "prob", per_row: int | None = None):
    """The familiar logit-lens picture of a LensResult, coloured by `metric` (see METRICS), `per_row`
    positions a row."""
    check_metric(metric)
    fig = _figure([lens], False, per_row)
    panels, image = _panels(
        fig, [lens], [_title(lens, "Logit lens")], metric, generated=False, per_row=per_row
    )
    fig.colorbar(image, ax=list(panels[0][0]), label=METRICS[metric][0], shrink=1.0, pad=0.01, aspect=40)
    return fig


def compare_figure(full, pruned, metric: str = "prob", per_row: int | None = None):
    """Full and pruned lenses of the same prompt, one above the other, on one colour scale."""
    import numpy as np

    check_metric(metric)
    if full.tokens != pruned.tokens or full.positions != pruned.positions:
        raise SpecError("compare_figure needs two lenses of the same tokens and positions")
    norm = _values(full, metric, False)[1]
    if metric == "kl":  # one scale for both: the larger of the two maxima
        from matplotlib import colors

        top = max(float(np.nanmax(full.kl_to_final)), float(np.nanmax(pruned.kl_to_final)), 1e-3)
        norm = colors.PowerNorm(0.5, 0.0, top)
    fig = _figure([full, pruned], False, per_row)
    # Each panel keeps its own row labels (the pruned one marks skipped blocks).
    panels, image = _panels(
        fig,
        [full, pruned],
        [_title(full, "Full model"), _title(pruned, "Pruned")],
        metric,
        generated=False,
        per_row=per_row,
        norm=norm,
    )
    fig.colorbar(
        image, ax=[ax for axes, _ in panels for ax in axes], label=METRICS[metric][0], shrink=0.6, pad=0.01
    )
    return fig


def generation_figure(gen, metric: str = "prob", per_row: int | None = None):
    """Each generated token's lens: generated text across in rows of `per_row` tokens, layers up; red boxes
    mark emergence.

    A red box spans a token's column from its emergence row to the top: the rows in which the
    generated token is (and stays) top-1. No box: it was never top-1 in the last row (sampled).
    """
    from matplotlib.patches import Rectangle

    check_metric(metric)
    lens = gen.lens
    n_rows = lens.entropy.shape[0]
    fig = _figure([lens], True, per_row)
    panels, image = _panels(
        fig,
        [lens],
        ["red boxes: the rows from which the generated token is top-1 to the end"],
        metric,
        generated=True,
        per_row=per_row,
    )
    axes, chunks = panels[0]
    emergence = gen.emergence
    for ax, cols in zip(axes, chunks):
        for x, j in enumerate(cols):
            e = emergence[j]
            if e is not None:
                ax.add_patch(
                    Rectangle(
                        (x - 0.46, e - 0.46),
                        0.92,
                        n_rows - e - 0.08,
                        fill=False,
                        edgecolor="#d62728",
                        linewidth=1.8,
                    )
                )
    fig.suptitle(
        f"{_title(lens, 'Logit lens during generation')}, after {plot_text(repr(_tail(lens.prompt or '')))}",
        fontsize=10,
    )
    fig.colorbar(image, ax=list(axes), label=METRICS[metric][1], shrink=1.0, pad=0.01, aspect=40)
    return fig


def _tail(text: str, n: int = 40) -> str:
    """The end of `text` in about `n` characters, cut at a word boundary when one is near."""
    if len(text) <= n:
        return text
    tail = text[-(n - 1) :]
    space = tail.find(" ")
    if 0 <= space < n // 3:  # start at the next whole word, not in the middle of one
        tail = tail[space:]
    return "…" + tail
