"""`probes embed`: token ids, norms, neighbours and cosines of common and rare words in the embedding matrix."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.tokens import show_token
from probes.errors import ProbesError

FIGURES = ("norms", "cosine", "scatter", "positions")


def _words(text: str | None, flag: str) -> list[str] | None:
    """'dog, city' -> ['dog', 'city']; empty entries are kept so the library can name them."""
    if text is None:
        return None
    if not text.strip():
        raise ProbesError(f"{flag} is empty; give comma-separated words, e.g. {flag} dog,city")
    return [w.strip() for w in text.split(",")]


def embed(
    common: Annotated[Optional[str], typer.Option("--common", help="Comma list of common words (default: dog,city,book,love,science).")] = None,
    rare: Annotated[Optional[str], typer.Option("--rare", help="Comma list of rare or made-up words (default: xqzt,blorpt,thraldor,uvuvwevwe,zzzzz).")] = None,
    words: Annotated[Optional[str], typer.Option("--words", help="Comma list of words to look at as one custom group (instead of the two default lists).")] = None,
    top: Annotated[int, typer.Option("--top", "--neighbours", help="Nearest neighbours by cosine to list per word.")] = 5,
    plot_dir: Annotated[Optional[str], typer.Option("--plot-dir", help="Write norms.png, cosine.png, scatter.png and positions.png into this folder (created if missing).")] = None,
    processed: Annotated[bool, typer.Option("--processed", help="Also show the numbers of TransformerLens' centred W_E / W_pos, side by side.")] = False,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Look at the token embedding matrix: ids, norms, neighbours and cosines of common and rare words.

    For each word: its token ids, norm, norm percentile and nearest neighbours; for each group, the pairwise cosines. Numbers come from the checkpoint's own wte/wpe (as transformers loads them), not TransformerLens' centred W_E; --processed shows both.
    """
    from probes.cli.common import Target
    from probes.io import check_dir, check_figure_path
    from probes.studies.embeddings import word_groups
    from probes.tokens import check_top

    common, rare, words = _words(common, "--common"), _words(rare, "--rare"), _words(words, "--words")
    word_groups(common, rare, words)  # bad lists fail before the model loads
    check_top(top, minimum=0)
    out_dir = check_dir(plot_dir, "--plot-dir") if plot_dir else None
    if out_dir is not None and out_dir.is_dir():
        for name in FIGURES:  # the same output rule as every file: no overwrite without --force
            check_figure_path(out_dir / f"{name}.png", force=force, flag="--plot-dir")
    m = Target(model, device, dtype, threads=threads).load()

    import probes

    emb = probes.embeddings(m, common=common, rare=rare, words=words, top=top, processed=processed)
    if out_dir is not None:
        from probes.io import save_figure

        out_dir.mkdir(parents=True, exist_ok=True)
        for name in FIGURES:
            path = save_figure(getattr(emb, f"figure_{name}")(), out_dir / f"{name}.png", force=force)
            log(f"wrote {path}")
    emit(emb.as_dict(), json, _render)


def _render(d: dict) -> str:
    proc = d.get("processed")
    out = [f"model {d['model']}; embedding statistics from {d['source']}"]
    if proc:
        out.append(f"--processed: the 'proc' columns are from {proc['source']}")
    out.append("")
    header = ["word", "group", "ids", "tokens", "id used", "space ids", "norm", "%ile"]
    if proc:
        header += ["proc norm", "proc %ile"]
    header += ["neighbours (cosine)"]
    rows = []
    for w in d["words"]:
        row = [
            show_token(w["word"], 14) + (" *" if w["split"] else ""), w["group"], _ids(w["token_ids"]),
            " ".join(show_token(t, 10) for t in w["str_tokens"]), w["id"], _ids(w["space_token_ids"]),
            w["norm"], f"{w['norm_percentile']:.1f}",
        ]
        if proc:
            row += [w["processed"]["norm"], f"{w['processed']['norm_percentile']:.1f}"]
        row.append(", ".join(f"{show_token(n['token'], 10)} {n['cosine']:.2f}" for n in w["neighbours"]))
        rows.append(row)
    out.append(table(rows, header, align="llllrlrr" + ("rr" if proc else "") + "l"))
    out.append("%ile: percent of the vocabulary with a smaller norm; space ids: the word with a leading space")
    if any(w["split"] for w in d["words"]):
        out.append("* the word is several tokens; its vector is its first token's (the id used)")
    out.append("")
    out += _summary_lines(d["summary"], "checkpoint wte")
    if proc:
        out += _summary_lines(proc["summary"], "processed W_E (centred)")
    for g, mat in d["cosine"].items():
        labels = [w["word"] for w in d["words"] if w["group"] == g]
        out.append("")
        out.append(f"cosine similarity, {g} (checkpoint wte):")
        out.append(table([[show_token(labels[i], 12), *[f"{v:.2f}" for v in row]] for i, row in enumerate(mat)],
                         ["", *[show_token(x, 12) for x in labels]], align="l" + "r" * len(labels)))
    return "\n".join(out)


def _ids(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)


def _f(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _summary_lines(s: dict, what: str) -> list[str]:
    v, p = s["vocab"], s["positions"]
    lines = [f"{what}: vocabulary of {v['size']} x {v['d_model']}; norm median {_f(v['median_norm'])}, "
             f"mean {_f(v['mean_norm'])}, range {_f(v['min_norm'])}-{_f(v['max_norm'])}."]
    for g, x in s["groups"].items():
        lines.append(
            f"  {g}: mean norm {_f(x['mean_norm'])} (mean percentile {x['mean_norm_percentile']:.1f}), "
            f"with a leading space {_f(x['mean_space_norm'])}; mean off-diagonal cosine {_f(x['mean_cosine'])}; "
            f"{x['n_split']} of {x['n_words']} split into several tokens ({x['n_space_split']} with a leading space)."
        )
    c = s["comparison"]
    if c:
        lines.append(
            f"  common vs rare: mean norm {_f(c['mean_norm_common'])} vs {_f(c['mean_norm_rare'])} "
            f"(ratio {_f(c['norm_ratio'])}), mean percentile {c['mean_norm_percentile_common']:.1f} vs "
            f"{c['mean_norm_percentile_rare']:.1f}; mean cosine {_f(c['mean_cosine_common'])} vs "
            f"{_f(c['mean_cosine_rare'])} (difference {_f(c['mean_cosine_difference'])}); "
            f"split into several tokens: {c['split_common']} of {c['n_common']} common, "
            f"{c['split_rare']} of {c['n_rare']} rare."
        )
    lines.append(f"  wpe: {p['n']} positions, mean norm {_f(p['mean_norm'])} "
                 f"(position 0: {_f(p['norm_first'])}, last: {_f(p['norm_last'])}).")
    return lines
