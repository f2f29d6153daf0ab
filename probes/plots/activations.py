"""Captured-states figure: residual norm by layer and the cosine of consecutive layers' streams."""

from __future__ import annotations

from probes.tokens import model_label, plot_text

_STYLE = {
    "resid_pre": ("#3b6fb6", "o"),
    "resid_mid": ("#8a5cb8", "s"),
    "resid_post": ("#d0743c", "^"),
    "attn_out": ("#5a9e6f", "v"),
    "mlp_out": ("#b8a13c", "D"),
}


def activations_figure(acts, include_bos: bool = False):
    """Two panels: mean norm of each captured (pos, d_model) hook by block, and the mean cosine of
    the stream before and after each block (1 means the block left its direction unchanged).

    Skipped blocks are shaded in both panels.
    """
    from matplotlib.figure import Figure

    norms = acts.norms(include_bos=include_bos)  # {family: (layer,)}
    cos = acts.cosines(include_bos=include_bos)  # {block: cosine}
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_norm, ax_cos = fig.subplots(1, 2)
    for ax in (ax_norm, ax_cos):
        for i in acts.skipped_blocks:
            ax.axvspan(i - 0.5, i + 0.5, color="#dddddd", zorder=0)
        ax.set_xlabel("block")
        ax.grid(alpha=0.3)
        ax.set_xlim(-0.6, acts.n_layers - 0.4)
        ax.set_xticks(range(acts.n_layers))

    for fam, values in norms.items():
        color, marker = _STYLE.get(fam, (None, "."))
        # Dashed: what a block adds (attn_out, mlp_out); solid: the stream itself.
        style = "--" if fam in ("attn_out", "mlp_out") else "-"
        ax_norm.plot(acts.layers_of(fam), values.tolist(), style, marker=marker, color=color, label=fam)
    ax_norm.set_ylabel("mean L2 norm over positions")
    ax_norm.set_title("norm by layer", fontsize=10)
    if norms:
        ax_norm.legend(fontsize=8)
    else:
        ax_norm.text(0.5, 0.5, "no (pos, d_model) hooks captured", ha="center", transform=ax_norm.transAxes)

    if cos:
        blocks = list(cos)
        ax_cos.plot(blocks, [cos[b] for b in blocks], marker="o", color="#3b6fb6")
        low = min(cos.values())
        ax_cos.set_ylim(min(0.0, low - 0.05), 1.02)
    else:
        ax_cos.text(
            0.5,
            0.5,
            "needs the stream at consecutive depths\n(resid_pre and/or resid_post of neighbouring blocks)",
            ha="center",
            va="center",
            fontsize=8,
            transform=ax_cos.transAxes,
        )
    ax_cos.set_ylabel("mean cosine(stream before, after)")
    ax_cos.set_title("cosine of consecutive layers", fontsize=10)

    prompt = acts.prompt if len(acts.prompt) <= 50 else acts.prompt[:49] + "…"
    notes = [
        f"{len(acts.tokens)} positions"
        + ("" if include_bos or not acts.bos else ", BOS left out of the means")
    ]
    if acts.skipped_blocks:
        notes.append("shaded: skipped blocks")
    model = plot_text(model_label(acts.meta.model))
    fig.suptitle(f"{model}: {plot_text(repr(prompt))} ({'; '.join(notes)})", fontsize=10)
    return fig
