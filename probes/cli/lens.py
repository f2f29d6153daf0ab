"""`probes lens`: the logit lens of a prompt (or of each generated token) as a table, JSON or a plot."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.tokens import show_token

Position = Annotated[
    str | None,
    typer.Option(
        "--position",
        help=(
            "Positions to decode: one (negative counts from the end; -1 is the last), a list (0,4,-1) or a "
            "range (2-9). The table shows each; --plot, --html and --json cover these. Without it the table "
            "shows the last position, and the others every position."
        ),
    ),
]
Metric = Annotated[
    str,
    typer.Option(
        "--metric",
        help=(
            "Plot colour: prob (of each cell's top-1; with --generate, of the generated token), entropy, kl "
            "(to the final row) or rank (of the final top-1; with --generate, of the generated token)."
        ),
    ),
]
CompareSkip = Annotated[
    str | None,
    typer.Option(
        "--compare-skip",
        help=(
            "Also run the lens with these blocks skipped; the plot puts full and pruned side by side (over "
            "a --dataset: as a second set of lines)."
        ),
    ),
]
Mid = Annotated[
    bool,
    typer.Option(
        "--mid",
        help="Add a row after each block's attention (its resid_mid, before the MLP): 2L+1 rows, logit lens.",
    ),
]
Generate = Annotated[
    int | None,
    typer.Option(
        "--generate",
        help="Generate N tokens and show the lens of each one as it was produced, with its emergence row.",
    ),
]
DatasetOpt = o.dataset_option("Average the lens over many texts instead of one prompt")
Tuned = Annotated[
    str | None,
    typer.Option(
        "--tuned",
        help=(
            "Read the rows through a tuned lens: a folder from `probes tuned-lens train`, or 'bundled' (the "
            "one shipped with the bundled model). With --dataset, logit lens and tuned lens side by side."
        ),
    ),
]
_SAMPLING = ("temperature", "top_k", "top_p", "greedy", "seed", "stop_at_eos")


def lens(
    ctx: typer.Context,
    prompt: o.Prompt = None,
    position: Position = None,
    top: o.Top = 5,
    plot: o.Plot = None,
    html: o.Html = None,
    force: o.Force = False,
    metric: Metric = "prob",
    skip: o.Skip = None,
    keep: o.Keep = None,
    compare_skip: CompareSkip = None,
    mid: Mid = False,
    generate: Generate = None,
    dataset: DatasetOpt = None,
    max_texts: o.MaxTexts = None,
    streaming: o.Streaming = False,
    split: o.Split = None,
    tuned: Tuned = None,
    temperature: o.Temperature = o.SAMPLING.temperature,
    top_k: o.TopK = o.SAMPLING.top_k,
    top_p: o.TopP = o.SAMPLING.top_p,
    greedy: o.Greedy = o.SAMPLING.greedy,
    stop_at_eos: o.StopAtEos = o.SAMPLING.stop_at_eos,
    seed: o.Seed = o.SAMPLING.seed,
    bos: o.Bos = o.SAMPLING.bos,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Logit lens: decode each layer's residual stream through the final norm and unembedding.

    Rows are the residual stream after each block (embed: before block 0; the last row is the model's output).
    The table shows the last position, --json every position, --plot all of them coloured by --metric;
    --position picks the positions all of them cover.
    Entropy, KL(final || row) and cross-entropy are in nats.

    --generate N follows each generated token (sampled with --temperature, --top-k, --top-p, --greedy, --seed)
    and reports its emergence row: the first row from which it stays top-1.

    --dataset FILE averages over every position of every text (texts longer than the context are cut into
    windows): per row, the mean and a 95% bootstrap interval (resampling texts) of KL(final || row), entropy,
    cross-entropy and top-1 accuracy on the true next token, and top-1 agreement with the final row; --plot
    draws one panel per metric.

    --tuned FOLDER reads every row but the last through that tuned lens's translators (all views); with
    --dataset it shows the logit lens and the tuned lens side by side.

    --html FILE writes the interactive view of a prompt or a generation: hover a cell for its top tokens,
    switch the metric, and (with --compare-skip) the run; with --tuned it switches between the logit lens
    and the tuned lens. With --dataset: each metric's curve with its band, logit and tuned lens overlaid,
    the exact numbers on hover.
    """
    import probes
    from probes.cli.common import Target
    from probes.core.sampling import SamplingConfig
    from probes.errors import ProbesError
    from probes.meta import model_meta
    from probes.plots.lens import check_metric
    from probes.tokens import check_top

    # Everything checkable without the model fails before loading it.
    check_metric(metric)
    check_top(top)
    if mid and (generate is not None or tuned is not None):
        raise ProbesError(
            "--mid reads a prompt or a dataset through the logit lens; it does not combine with "
            "--generate or --tuned"
        )
    if plot:
        from probes.io import check_figure_path

        check_figure_path(plot, force=force)
    if html:
        from probes.views.page import check_html_path

        check_html_path(html, force=force)
    if dataset is not None or max_texts is not None or split is not None or streaming:
        return _dataset_lens(
            ctx,
            dataset,
            max_texts,
            split,
            prompt,
            plot,
            force,
            skip,
            keep,
            compare_skip,
            bos,
            model,
            device,
            dtype,
            threads,
            json,
            tuned,
            html,
        )
    if prompt is None:
        raise ProbesError("give a prompt with --prompt (FILE:path reads a file), or texts with --dataset")
    if compare_skip is not None and (skip is not None or keep is not None):
        raise ProbesError("--compare-skip compares with the full model; drop --skip/--keep")
    typed = o.given(ctx, *_SAMPLING)
    if generate is None and typed:
        raise ProbesError(
            f"{', '.join(typed)}: sampling options apply only with --generate N (--top sets how many tokens "
            "each row lists)"
        )
    cfg = None
    if generate is not None and position is not None:
        raise ProbesError(
            "--position picks a prompt position; with --generate the table covers every generated token"
        )
    if generate is not None:
        if generate < 1:
            raise ProbesError(f"--generate {generate}: give a number of tokens >= 1")
        cfg = SamplingConfig(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy,
            seed=seed,
            stop_at_eos=stop_at_eos,
            bos=bos,
            max_new_tokens=generate,
        )
        if compare_skip is not None:
            raise ProbesError(
                "--generate and --compare-skip do not combine; run the pruned generation with --skip"
            )
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads)
    positions = None if position is None else _position_spec(position, target.n_ctx)
    m, skipped, compared, tl = _load(target, skip, keep, compare_skip, tuned, model)
    from probes.studies.lens.generation import generation_lens
    from probes.studies.lens.logit import logit_lens

    others = []
    with probes.skip(m, skipped):
        meta = model_meta(m)
        if cfg is not None:
            result = generation_lens(m, prompt, cfg, top=top, lens=tl)
            if html and tl is not None:  # the same tokens (sampling never sees the lens), read both ways
                others = [generation_lens(m, prompt, cfg, top=top)]
        else:
            kw = dict(top=top, bos=bos, compare_skip=compared, positions=positions)
            result = logit_lens(m, prompt, lens=tl, mid=mid, **kw)
            if html and tl is not None:  # the view switches between the two lenses
                others = [logit_lens(m, prompt, **kw)]
    pruned = None if cfg is not None else result.compare

    if plot:
        _save_plot(result, pruned, metric, plot, force)
    if html:
        _save_html(result, others, html, force)
    data = {**meta, **result.as_dict()}
    if pruned is not None:
        data["compare"] = {**meta, **data["compare"], "skipped_blocks": pruned.skipped_blocks}
    if json:
        emit(data, True, str)
    elif cfg is not None:
        emit(data, False, lambda d: _render_generation(result, d))
    else:
        shown = result.positions if positions is not None else result.positions[-1:]
        emit(data, False, lambda d: _render_positions(result, pruned, shown, d))


def _dataset_lens(
    ctx,
    dataset,
    max_texts,
    split,
    prompt,
    plot,
    force,
    skip,
    keep,
    compare_skip,
    bos,
    model,
    device,
    dtype,
    threads,
    json,
    tuned=None,
    html=None,
) -> None:
    """`probes lens --dataset`: the lens averaged over a dataset's texts, every check before loading."""
    import probes
    from probes.cli.common import Target, other_rank
    from probes.core.dataset import Dataset
    from probes.errors import ProbesError
    from probes.meta import model_meta
    from probes.progress import bar_progress

    if dataset is None:
        raise ProbesError("--max-texts and --split choose texts of a --dataset; give --dataset FILE")
    if prompt is not None:
        raise ProbesError("give either --prompt (one text) or --dataset (many), not both")
    ignored = o.given(ctx, "position", "metric", "top", "generate", *_SAMPLING)
    if ignored:
        raise ProbesError(
            f"{', '.join(ignored)}: not used with --dataset, which averages every position and draws its own "
            "plot"
        )
    if plot:
        from probes.io import check_figure_path

        check_figure_path(plot, force=force)
    if compare_skip is not None and (skip is not None or keep is not None):
        raise ProbesError("--compare-skip compares with the full model; drop --skip/--keep")
    data = Dataset(dataset, split=split or "lines", max_texts=max_texts, streaming=ctx.params["streaming"])
    data.check()  # readable, non-empty, every line well formed: before the model loads
    target = Target(model, device, dtype, bos=bos, threads=threads, ranks=True)
    target.windows(bos=bos)
    m, skipped, compared, tl = _load(target, skip, keep, compare_skip, tuned, model)
    with probes.skip(m, skipped):
        meta = model_meta(m)
        lenses = [None] if tl is None else [None, tl]  # with a tuned lens: both, in one pass
        result, *others = probes.lens_over(
            m,
            data,
            bos=bos,
            compare_skip=compared,
            lens=lenses,
            progress=bar_progress(quiet=json),
            mid=ctx.params["mid"],
        )
        through = others[0] if others else None
    if other_rank():
        return
    if plot:
        from pathlib import Path

        from probes.io import save_figure

        try:
            fig = (
                result.figure()
                if through is None
                else result.figure(label="logit lens", others=[(f"tuned lens ({tl.name})", through)])
            )
            save_figure(fig, plot, dpi=110, force=force)
        except (OSError, ValueError) as e:
            raise ProbesError(f"cannot write the plot to {plot}: {e}") from None
        log(f"wrote the dataset lens plot to {Path(plot)}")
    if html:
        _save_html(result, [through] if through is not None else [], html, force, logit_first=False)
    if through is not None:
        from probes.cli.tuned_lens import render_comparison

        emit(
            {**meta, **result.as_dict(), "tuned": through.as_dict()},
            json,
            lambda d: _render_dataset(result, "logit lens ") + "\n\n" + render_comparison(result, through),
        )
        return
    emit({**meta, **result.as_dict()}, json, lambda d: _render_dataset(result))


def _load(target, skip, keep, compare_skip, tuned, model):
    """(model, blocks to skip, blocks to compare-skip, tuned lens or None): every value checked, then one
    load."""
    import probes
    from probes.core.layers import compare_blocks

    skipped = target.skipped(skip, keep)
    compared = compare_blocks(compare_skip, target.n_layers) if compare_skip is not None else None
    if tuned is not None:
        from probes.studies.lens.tuned import check_for_model

        check_for_model(tuned, model, target.n_layers)
    m = target.load()
    return m, skipped, compared, probes.load_tuned_lens(tuned, m) if tuned is not None else None


def _dataset_table(lens) -> str:
    from probes.numbers import show_number
    from probes.studies.lens.dataset_result import METRICS

    cell = lambda m, lo, hi: f"{show_number(m, '.3f')} [{show_number(lo, '.3f')}, {show_number(hi, '.3f')}]"
    rows = [[r["row"], *(cell(*r[name]) for name in METRICS)] for r in lens.table()]
    header = ["row", "KL(final||row)", "entropy", "xent next", "top-1 acc next", "agrees w/ final"]
    return table(rows, header, align="l" + "r" * len(METRICS))


def _render_dataset(lens, which: str = "") -> str:
    """The dataset lens as tables; `which` ('logit lens ') names the lens where a tuned one follows."""
    from probes.core.layers import format_layers

    skipped = f"; blocks skipped: {format_layers(lens.skipped_blocks)}" if lens.skipped_blocks else ""
    out = [
        f"model {lens.model_name}{skipped}",
        f"dataset {lens.source}: {lens.n_texts:,} texts, {lens.n_windows:,} windows, {lens.n_tokens:,} "
        "tokens",
        "rows: the residual stream after each block (embed: before block 0); KL, entropy and cross-entropy "
        "in nats",
        f"each cell: the mean over every position [{lens.level:.0%} bootstrap interval, resampling texts]",
        "",
        _dataset_table(lens),
    ]
    if lens.compare is not None:
        out += [
            "",
            f"{which}with blocks {format_layers(lens.compare.skipped_blocks)} skipped; "
            "KL and agreement against the unpruned final:",
            "",
            _dataset_table(lens.compare),
        ]
    return "\n".join(out)


def _save_plot(result, pruned, metric: str, path: str, force: bool) -> None:
    from pathlib import Path

    from probes.errors import ProbesError
    from probes.io import save_figure
    from probes.plots.lens import compare_figure
    from probes.studies.lens.generation import GenerationLens

    if pruned is not None:
        fig = compare_figure(result, pruned, metric)
    else:
        fig = result.figure(metric)
    try:
        save_figure(fig, path, dpi=110, force=force)
    except (OSError, ValueError) as e:
        raise ProbesError(f"cannot write the plot to {path}: {e}") from None
    what = "generation lens" if isinstance(result, GenerationLens) else "lens"
    log(f"wrote the {what} plot ({metric}) to {Path(path)}")


def _save_html(result, others: list, path: str, force: bool, logit_first: bool = True) -> None:
    """Write `result`'s view with `others`; `logit_first`: `others[0]` is the logit lens, shown first."""
    from pathlib import Path

    from probes.studies.lens.dataset_result import DatasetLens
    from probes.studies.lens.generation import GenerationLens

    if others and logit_first:  # the logit lens first, then the tuned lens the command was asked for
        others[0].to_html(path, others=[result], force=force)
    else:
        result.to_html(path, others=others, force=force)
    what = (
        "generation lens"
        if isinstance(result, GenerationLens)
        else "dataset lens"
        if isinstance(result, DatasetLens)
        else "lens"
    )
    log(f"wrote the interactive {what} view to {Path(path)}")


def _position_table(lens, position: int) -> str:
    rows = []
    for r in lens.table(position):
        tops = "  ".join(f"{show_token(s, 12)} {p:.3g}" for s, p in r["top"])
        rows.append(
            [
                r["row"],
                tops,
                round(r["entropy"], 3),
                round(r["kl_to_final"], 4),
                r["final_rank"],
                r["next_rank"] if r["next_rank"] is not None else "-",
            ]
        )
    return table(
        rows, ["row", "top tokens (prob)", "entropy", "KL", "final rank", "next rank"], align="llrrrr"
    )


def _position_spec(spec: str, n_ctx: int) -> list[int]:
    """--position's positions: integers (negative counts from the end) and ranges a-b, comma-separated."""
    import re

    from probes.errors import ProbesError

    out: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(?:(-?\d+)|(\d+)-(\d+))\s*", part)
        if m is None or (m[2] and int(m[2]) > int(m[3])):
            raise ProbesError(f"--position {spec!r}: give positions like -1, 0,4,-1 or 2-9")
        out += [int(m[1])] if m[1] else range(int(m[2]), int(m[3]) + 1)
    for p in out:
        if not -n_ctx <= p < n_ctx:
            raise ProbesError(f"position {p} is out of range: the model reads at most {n_ctx} tokens")
    return out


def _render_positions(lens, pruned, positions: list[int], d: dict) -> str:
    """The table of each of `positions` (absolute), and of the pruned run beside it."""
    from probes.core.layers import format_layers

    out = [
        f"model {d['model']}" + (f"; blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""),
        f"prompt: {lens.prompt!r} ({len(lens.tokens)} tokens)",
        "rows: the residual stream after each block (embed: before block 0); entropy and KL(final || row) "
        "in nats",
    ]
    for p in positions:
        nxt = show_token(lens.str_tokens[p + 1]) if p + 1 < len(lens.tokens) else "unknown (last position)"
        out += ["", f"position {p}: token {show_token(lens.str_tokens[p])}; next token {nxt}", ""]
        out.append(_position_table(lens, p))
        if pruned is not None:
            skipped = format_layers(d["compare"]["skipped_blocks"])
            out += ["", f"with blocks {skipped} skipped:", "", _position_table(pruned, p)]
    return "\n".join(out)


def _render_generation(gen, d: dict) -> str:
    lens = gen.lens
    labels = lens.row_labels
    rows = []
    for j, (tok, e) in enumerate(zip(gen.generated_strings, gen.emergence)):
        ranks = " ".join(str(int(r)) for r in gen.rank[:, j])
        rows.append(
            [
                j,
                show_token(tok, 14),
                labels[e] if e is not None else "never",
                round(float(gen.prob[-1, j]), 4),
                ranks,
            ]
        )
    cfg = gen.config
    out = [
        f"model {d['model']}; {cfg.label()}; seed {cfg.seed}"
        + (f"; blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""),
        f"prompt: {lens.prompt!r}",
        f"generated: {gen.text!r}",
        "emerges: the first row from which the token stays top-1 (never: it was sampled below the top)",
        f"ranks: the token's rank in each row, {labels[0]} to {labels[-1]}",
        "",
        table(rows, ["#", "token", "emerges", "p(final)", "rank per row"], align="rllrl"),
    ]
    return "\n".join(out)
