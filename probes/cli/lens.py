"""`probes lens`: the logit lens of a prompt (or of each generated token) as a table, JSON or a plot."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, handle_errors, log, show_token, table

Position = Annotated[int, typer.Option("--position", help="Position shown in the table (negative counts from the end; -1 is the last). --json covers every position.")]
LensTopK = Annotated[int, typer.Option("--top-k", help="Tokens listed per row (the lens's top-k, not sampling's).")]
Metric = Annotated[str, typer.Option("--metric", help="Plot colour: prob (of each cell's top-1; with --generate, of the generated token), entropy, kl (to the final row) or rank (of the final top-1; with --generate, of the generated token).")]
CompareSkip = Annotated[str | None, typer.Option("--compare-skip", help="Also run the lens with these blocks skipped; the plot puts full and pruned side by side.")]
Generate = Annotated[int | None, typer.Option("--generate", help="Generate N tokens and show the lens of each one as it was produced, with its emergence row.")]
SampleTopK = Annotated[int | None, typer.Option("--sample-top-k", help="With --generate: sampling's top-k (generate's --top-k; 0: none).")]


@handle_errors
def lens(
    prompt: o.Prompt = None,
    position: Position = -1,
    top_k: LensTopK = 5,
    plot: o.Plot = None,
    metric: Metric = "prob",
    skip: o.Skip = None,
    keep: o.Keep = None,
    compare_skip: CompareSkip = None,
    generate: Generate = None,
    temperature: o.Temperature = 0.8,
    sample_top_k: SampleTopK = 200,
    top_p: o.TopP = None,
    greedy: o.Greedy = False,
    stop_at_eos: o.StopAtEos = False,
    seed: o.Seed = 1337,
    bos: o.Bos = True,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
) -> None:
    """Logit lens: decode each layer's residual stream through the final norm and unembedding.

    Rows are the residual stream after each block (embed: before block 0; the last row is the model's output). The table shows one position (--position), --json every position, --plot all of them coloured by --metric. Entropy and KL(final || row) are in bits.

    --generate N follows each generated token (sampled with --temperature, --sample-top-k, --top-p, --greedy, --seed) and reports its emergence row: the first row from which it stays top-1.
    """
    import probes
    from probes.cli.common import load_model, model_meta
    from probes.errors import ProbesError
    from probes.generation import check_counts
    from probes.plots.lens import check_metric
    from probes.sampling import SamplingSettings

    # Everything checkable without the model fails before loading it.
    check_metric(metric)
    if plot:
        from probes.io import check_figure_path

        check_figure_path(plot)
    if top_k < 1:
        raise ProbesError(f"--top-k must be >= 1, got {top_k}")
    if prompt is None:
        raise ProbesError("give a prompt with --prompt (FILE:path reads a file)")
    if compare_skip is not None and (skip is not None or keep is not None):
        raise ProbesError("--compare-skip compares with the full model; drop --skip/--keep")
    if generate is not None:
        check_counts(1, generate)
        SamplingSettings(temperature, sample_top_k or None, top_p, greedy)
        if compare_skip is not None:
            raise ProbesError("--generate and --compare-skip do not combine; run the pruned generation with --skip")
    m = load_model(model, device, dtype)
    from probes.lens import check_position, logit_lens
    from probes.lens_generation import generation_lens

    with probes.skip(m, skip, keep=keep):
        meta = model_meta(m)
        if generate is not None:
            result = generation_lens(
                m, prompt, generate, top_k=top_k, temperature=temperature, sample_top_k=sample_top_k or None,
                top_p=top_p, greedy=greedy, seed=seed, bos=bos, stop_at_eos=stop_at_eos,
            )
        else:
            result = logit_lens(m, prompt, top_k=top_k, bos=bos)
            check_position(position, len(result.tokens))
    pruned = None
    if compare_skip is not None:
        with probes.skip(m, compare_skip):
            pruned = logit_lens(m, result.tokens, top_k=top_k)
            pruned.prompt = result.prompt
            pruned_meta = model_meta(m)

    if plot:
        _save_plot(result, pruned, metric, plot)
    data = {**meta, **result.as_dict()}
    if pruned is not None:
        data["compare"] = {**pruned_meta, **pruned.as_dict()}
    if json:
        emit(data, True, str)
    elif generate is not None:
        emit(data, False, lambda d: _render_generation(result, d))
    else:
        emit(data, False, lambda d: _render_position(result, pruned, position, d))


def _save_plot(result, pruned, metric: str, path: str) -> None:
    from pathlib import Path

    from probes.errors import ProbesError
    from probes.lens_generation import GenerationLens
    from probes.io import save_figure
    from probes.plots.lens import compare_figure

    if pruned is not None:
        fig = compare_figure(result, pruned, metric)
    else:
        fig = result.figure(metric)
    try:
        save_figure(fig, path, dpi=110)
    except (OSError, ValueError) as e:
        raise ProbesError(f"cannot write the plot to {path}: {e}") from None
    what = "generation lens" if isinstance(result, GenerationLens) else "lens"
    log(f"wrote the {what} plot ({metric}) to {Path(path)}")


def _position_table(lens, position: int) -> str:
    rows = []
    for r in lens.table(position):
        tops = "  ".join(f"'{show_token(s, 12)}' {p:.3g}" for s, p in r["top"])
        rows.append([r["row"], tops, round(r["entropy"], 3), round(r["kl_to_final"], 4), r["final_rank"],
                     r["next_rank"] if r["next_rank"] is not None else "-"])
    return table(rows, ["row", "top tokens (prob)", "entropy", "KL", "final rank", "next rank"], align="llrrrr")


def _render_position(lens, pruned, position: int, d: dict) -> str:
    p = position + len(lens.tokens) if position < 0 else position
    nxt = repr(lens.str_tokens[p + 1]) if p + 1 < len(lens.tokens) else "unknown (last position)"
    out = [
        f"model {d['model']}" + (f"; blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""),
        f"prompt: {lens.prompt!r} ({len(lens.tokens)} tokens)",
        f"position {p}: token {lens.str_tokens[p]!r}; next token {nxt}",
        "rows: the residual stream after each block (embed: before block 0); entropy and KL(final || row) in bits",
        "",
        _position_table(lens, position),
    ]
    if pruned is not None:
        out += ["", f"with blocks {d['compare']['skipped_blocks']} skipped:", "", _position_table(pruned, position)]
    return "\n".join(out)


def _render_generation(gen, d: dict) -> str:
    lens = gen.lens
    labels = lens.row_labels
    rows = []
    for j, (tok, e) in enumerate(zip(gen.generated_strings, gen.emergence)):
        ranks = " ".join(str(int(r)) for r in gen.rank[:, j])
        rows.append([j, f"'{show_token(tok, 14)}'", labels[e] if e is not None else "never",
                     round(float(gen.prob[-1, j]), 4), ranks])
    s = d["generation"]["settings"]
    how = "greedy" if s["greedy"] else f"temperature {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}"
    out = [
        f"model {d['model']}; {how}; seed {s['seed']}" + (f"; blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""),
        f"prompt: {lens.prompt!r}",
        f"generated: {gen.text!r}",
        "emerges: the first row from which the token stays top-1 (never: it was sampled below the top)",
        f"ranks: the token's rank in each row, {labels[0]} to {labels[-1]}",
        "",
        table(rows, ["#", "token", "emerges", "p(final)", "rank per row"], align="rllrl"),
    ]
    return "\n".join(out)
