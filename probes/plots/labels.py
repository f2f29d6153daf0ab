"""Point labels that do not pile up: each label put where it covers no other label and no marked point, with a
leader line, or left out.

    shown, hidden = place_labels(ax, [(x, y), ...], ["dog", ...], ["#3b6fb6", ...])

A small, deterministic placement: each label in turn tries spots around its point, nearest first
(right, left, above, below, then the diagonals, then further out), and takes the first that lies
inside the axes and overlaps neither a label already placed nor any marked point. A label with no
such spot is not drawn (earlier labels win), and `hidden_note` says how many were left out. Sizes
are measured in pixels after the figure's layout has run, and the result is stored as offsets in
points, so it holds at any dpi. A label set away from its point gets a thin line to it.
"""

from __future__ import annotations

PAD = 3.0  # px between two labels


def place_labels(ax, xy, texts, colours, fontsize: float = 8) -> tuple[list, int]:
    """Annotate point `xy[i]` (data coordinates) with `texts[i]` in `colours[i]` where there is room; returns
    (the annotations drawn, how many labels were left out)."""
    if not texts:
        return [], 0
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): measure text with Agg, as savefig draws it
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # runs the layout and autoscaling, so pixel positions are final
    renderer = fig.canvas.get_renderer()
    trial = [ax.text(0, 0, t, fontsize=fontsize) for t in texts]
    sizes = [(b.width + 4, b.height + 2) for b in (p.get_window_extent(renderer) for p in trial)]  # (w, h) px
    for p in trial:
        p.remove()
    pts = [tuple(p) for p in ax.transData.transform(xy)]  # (n, 2) px
    frame = ax.get_window_extent(renderer)
    boxes: list[tuple[float, float, float, float]] = []  # placed labels: (x0, y0, x1, y1) px
    placed = []  # (point, centre, size, text, colour) of each label drawn
    for (px, py), (w, h), t, c in zip(pts, sizes, texts, colours):
        spot = next((c for c in _spots(px, py, w, h) if _free(c, (w, h), boxes, pts, frame)), None)
        if spot is None:  # nowhere free: left out rather than drawn over another label
            continue
        placed.append(((px, py), spot, (w, h), t, c))
        boxes.append((spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2, spot[1] + h / 2))
    scale = 72.0 / fig.dpi  # px -> points
    out = []
    for (px, py), (cx, cy), (w, h), t, c in placed:
        far = max(abs(cx - px) - w / 2, abs(cy - py) - h / 2) > 10  # px from the point to the label's edge
        out.append(
            ax.annotate(
                t,
                ax.transData.inverted().transform((px, py)),
                xytext=((cx - px) * scale, (cy - py) * scale),
                textcoords="offset points",
                ha="center",
                va="center",
                fontsize=fontsize,
                color=c,
                zorder=6,
                bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7},
                arrowprops={
                    "arrowstyle": "-",
                    "color": c,
                    "linewidth": 0.6,
                    "alpha": 0.8,
                    "shrinkA": 0,
                    "shrinkB": 3,
                }
                if far
                else None,
            )
        )
    return out, len(texts) - len(out)


def hidden_note(ax, hidden: int) -> None:
    """Say under the legend (right of the axes) how many labels `place_labels` left out, if any. Outside
    the layout, so the axes do not move after the labels were placed."""
    if hidden:
        text = f"labels hidden: {hidden}\n(no room beside\ntheir points)"
        ax.text(
            1.01, 0, text, transform=ax.transAxes, va="bottom", fontsize=7, color="#555555", in_layout=False
        )


def _spots(px, py, w, h):
    """Candidate label centres around a point, nearest first."""
    import math

    for gap in (6, 16, 30, 48, 70, 100, 140, 190, 250):
        for deg in (0, 180, 90, -90, 30, -30, 150, -150, 60, -60, 120, -120):
            t = math.radians(deg)
            yield (px + math.cos(t) * (gap + w / 2), py + math.sin(t) * (gap + h / 2))


def _free(c, size, boxes, pts, frame, r: float = 6.0) -> bool:
    """Inside the axes, clear of every placed label (by PAD) and every marked point (by r)."""
    w, h = size
    x0, y0, x1, y1 = c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2
    if x0 < frame.x0 + 2 or x1 > frame.x1 - 2 or y0 < frame.y0 + 2 or y1 > frame.y1 - 2:
        return False
    if any(x0 < b[2] + PAD and b[0] < x1 + PAD and y0 < b[3] + PAD and b[1] < y1 + PAD for b in boxes):
        return False
    return not any(x0 - r < px < x1 + r and y0 - r < py < y1 + r for px, py in pts)
