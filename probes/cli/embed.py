"""`probes embed`: the token(s), norms, neighbours, cosines and PCA position of common and rare words in the
embedding matrix."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.errors import ProbesError
from probes.numbers import show_number
from probes.studies.embeddings.forms import CLASSIC_TOKEN_FORM, DEFAULT_TOKEN_FORM, parse_words
from probes.tokens import show_token

FIGURES = ("norms", "cosine", "scatter", "pca", "positions")


def embed(
    common: o.Common = None,
    rare: o.Rare = None,
    words: o.Words = None,
    token_form: o.TokenForm = DEFAULT_TOKEN_FORM,
    top: Annotated[
        int, typer.Option("--top", "--neighbours", help="Nearest neighbours by cosine to list per word.")
    ] = 5,
    vectors: Annotated[
        bool,
        typer.Option(
            "--vectors",
            help="Put each word's vector (d_model floats, in the chosen token form) in the --json output.",
        ),
    ] = False,
    plot_dir: Annotated[
        str | None,
        typer.Option(
            "--plot-dir",
            help=(
                "Write norms.png, cosine.png, scatter.png, pca.png and positions.png into this folder "
                "(created if missing)."
            ),
        ),
    ] = None,
    processed: Annotated[
        bool,
        typer.Option(
            "--processed", help="Also show the numbers of TransformerLens' centred W_E / W_pos, side by side."
        ),
    ] = False,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Look at the token embedding matrix: ids, norms, neighbours, cosines and a PCA of common and rare words.

    For each word: the token(s) its vector is read from (--token-form), its norm, norm percentile and nearest
    neighbours; for each group, the pairwise cosines, and common x rare. Numbers come from the checkpoint's
    own wte/wpe (as transformers loads them), not TransformerLens' centred W_E; --processed shows both.
    --token-form first reproduces the classic numbers.
    """
    from probes.cli.common import Target
    from probes.io import check_dir, check_figure_path
    from probes.studies.embeddings.forms import check_token_form
    from probes.studies.embeddings.study import word_groups
    from probes.tokens import check_top

    common, rare, words = (
        parse_words(common, "--common"),
        parse_words(rare, "--rare"),
        parse_words(words, "--words"),
    )
    word_groups(common, rare, words)  # bad lists fail before the model loads
    check_token_form(token_form)
    check_top(top, minimum=0)
    if vectors and not json:
        raise ProbesError("--vectors puts the vectors in the JSON output; add --json")
    out_dir = check_dir(plot_dir, "plot_dir") if plot_dir else None
    if out_dir is not None and out_dir.is_dir():
        for name in FIGURES:  # the same output rule as every file: no overwrite without --force
            check_figure_path(out_dir / f"{name}.png", force=force, param="plot_dir")
    m = Target(model, device, dtype, threads=threads).load()

    import probes

    emb = probes.embeddings(
        m, common=common, rare=rare, words=words, top=top, processed=processed, token_form=token_form
    )
    if out_dir is not None:
        from probes.io import save_figure

        out_dir.mkdir(parents=True, exist_ok=True)
        for name in FIGURES:
            if name == "positions" and emb.checkpoint.position_norms is None:
                log("no positions.png: the model has no learned position embeddings (rotary)")
                continue
            path = save_figure(getattr(emb, f"figure_{name}")(), out_dir / f"{name}.png", force=force)
            log(f"wrote {path}")
    emit(emb.as_dict(vectors=vectors), json, _render)


def _render(d: dict) -> str:
    proc = d.get("processed")
    out = [
        f"model {d['model']}; embedding statistics from {d['source']}",
        f"token form {d['token_form']}: {d['token_form_means']} (--token-form {CLASSIC_TOKEN_FORM}: the "
        "classic numbers)",
    ]
    if proc:
        out.append(f"--processed: the 'proc' columns are from {proc['source']}")
    out.append("")
    header = ["word", "group", f"tokens used ({d['token_form']})", "ids used", "norm", "%ile"]
    if proc:
        header += ["proc norm", "proc %ile"]
    header += ["neighbours (cosine)"]
    rows = []
    for w in d["words"]:
        row = [
            show_token(w["word"], 14) + (" †" if w.get("weak_piece") else " *" if w["split"] else ""),
            w["group"],
            " ".join(show_token(t, 10) for t in w["used_str_tokens"]),
            _ids(w["ids"]),
            w["norm"],
            f"{w['norm_percentile']:.1f}",
        ]
        if proc:
            row += [w["processed"]["norm"], f"{w['processed']['norm_percentile']:.1f}"]
        row.append(
            ", ".join(
                f"{show_token(n['token'], 10)} {show_number(n['cosine'], '.2f')}" for n in w["neighbours"]
            )
        )
        rows.append(row)
    out.append(table(rows, header, align="llllrr" + ("rr" if proc else "") + "l"))
    out.append(
        "%ile: percent of the vocabulary with a smaller norm; neighbours leave out the word's own tokens"
    )
    if any(w["split"] for w in d["words"]):
        how = "the mean of all of them" if d["token_form"] == "mean" else "one of them (tokens used)"
        out.append(f"* the form's text is several tokens; the vector is {how}")
    if any(w.get("weak_piece") for w in d["words"]):
        out.append(
            "† the vector is a bare space or a single character split off the word: it measures that piece, "
            "hardly the word (--token-form mean averages the pieces; first reads the bare word)"
        )
    out.append("")
    out += _summary_lines(d["summary"], "checkpoint wte")
    if proc:
        out += _summary_lines(proc["summary"], "processed W_E (centred)")
    for g, mat in d["cosine"].items():
        labels = [w["word"] for w in d["words"] if w["group"] == g]
        out += [
            "",
            f"cosine similarity, {g} (checkpoint wte, token form {d['token_form']}):",
            _matrix(labels, labels, mat),
        ]
    x = d["cross_cosine"]
    if x:
        rows_, cols = ([w["word"] for w in d["words"] if w["group"] == g] for g in (x["rows"], x["columns"]))
        out += [
            "",
            f"cosine similarity, {x['rows']} (rows) x {x['columns']} (columns): mean "
            f"{show_number(x['mean'], '.3f')}",
            _matrix(rows_, cols, x["matrix"]),
        ]
    pca = d["pca"]["explained_variance"]
    out += [
        "",
        f"PCA of the whole wte: PC1 and PC2 explain {100 * pca[0]:.1f}% and {100 * pca[1]:.1f}% of the "
        "variance (each word's coordinates are in --json; --plot-dir draws pca.png)",
    ]
    return "\n".join(out)


def _matrix(rows: list[str], cols: list[str], mat) -> str:
    return table(
        [[show_token(rows[i], 12), *[show_number(v, ".2f") for v in row]] for i, row in enumerate(mat)],
        ["", *[show_token(c, 12) for c in cols]],
        align="l" + "r" * len(cols),
    )


def _ids(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)


def _f(x) -> str:
    return show_number(x, ".4g", na="-")


def _weak(c: dict) -> str:
    """', read from a bare space or one character: ...' when any word's vector is such a piece."""
    if not (c.get("weak_common") or c.get("weak_rare")):
        return ""
    return (
        f"; read from a bare space or one character, not the word: {c['weak_common']} common, "
        f"{c['weak_rare']} rare"
    )


def _summary_lines(s: dict, what: str) -> list[str]:
    v, p = s["vocab"], s["positions"]
    lines = [
        f"{what}: vocabulary of {v['size']} x {v['d_model']}; norm median {_f(v['median_norm'])}, mean "
        f"{_f(v['mean_norm'])}, range {_f(v['min_norm'])}-{_f(v['max_norm'])}."
    ]
    for g, x in s["groups"].items():
        forms = ", ".join(f"{k} {_f(n)}" for k, n in x["mean_norm_by_form"].items())
        lines.append(
            f"  {g}: mean norm {_f(x['mean_norm'])} (mean percentile {x['mean_norm_percentile']:.1f}; by "
            f"token form: {forms}); mean off-diagonal cosine {_f(x['mean_cosine'])}; {x['n_bare_split']} of "
            f"{x['n_words']} split into several tokens as given, {x['n_space_split']} with a leading space."
        )
    c = s["comparison"]
    if c:
        lines.append(
            f"  common vs rare: mean norm {_f(c['mean_norm_common'])} vs {_f(c['mean_norm_rare'])} (ratio "
            f"{_f(c['norm_ratio'])}), mean percentile {c['mean_norm_percentile_common']:.1f} vs "
            f"{c['mean_norm_percentile_rare']:.1f}; mean cosine {_f(c['mean_cosine_common'])} vs "
            f"{_f(c['mean_cosine_rare'])} (difference {_f(c['mean_cosine_difference'])}), across the groups "
            f"{_f(c['mean_cross_cosine'])}; several tokens in this form: {c['split_common']} of "
            f"{c['n_common']} common, {c['split_rare']} of {c['n_rare']} rare" + _weak(c) + "."
        )
    if p is None:
        lines.append("  no learned position embeddings (rotary positions).")
    else:
        lines.append(
            f"  wpe: {p['n']} positions, mean norm {_f(p['mean_norm'])} "
            f"(position 0: {_f(p['norm_first'])}, last: {_f(p['norm_last'])})."
        )
    m = s.get("matrices")
    if m:
        out = "tied to the input embedding" if m["output"] == "tied" else f"separate ({m['output']})"
        lines.append(f"  input embedding {m['tokens']}; output embedding {out}.")
    return lines
