"""`probes prune`: the full model and the same model with blocks skipped, side by side, in numbers."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.core.sampling import PRUNE_SAMPLING as D
from probes.errors import ProbesError
from probes.studies.defaults import EVAL_HELP, PRUNE_PROMPT_HELP

PromptOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "--start",
        "-p",
        help=f"Prompt text; FILE:path reads it from a file. Default: {PRUNE_PROMPT_HELP}.",
    ),
]
DatasetOpt = o.dataset_option("Score the held-out metrics over many texts")
NoEval = Annotated[
    bool,
    typer.Option(
        "--no-eval",
        help="Skip the held-out scoring (loss, KL, agreement); the generations and their metrics stay.",
    ),
]


def prune(
    ctx: typer.Context,
    skip: Annotated[
        list[str] | None,
        typer.Option(
            "--skip",
            help=(
                "Blocks to skip (repeatable): odd, even, first-half, last-half, none, all, or 1,3,5-7 "
                "[default: odd]."
            ),
        ),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="Blocks to keep (repeatable); the complement is skipped."),
    ] = None,
    prompt: PromptOpt = None,
    max_new_tokens: o.MaxNewTokens = D.max_new_tokens,
    greedy: o.Greedy = D.greedy,
    num_samples: o.NumSamples = D.num_samples,
    temperature: o.Temperature = D.temperature,
    top_k: o.TopK = D.top_k,
    top_p: o.TopP = D.top_p,
    seed: o.Seed = D.seed,
    bos: o.Bos = D.bos,
    eval_text: Annotated[
        str | None,
        typer.Option(
            "--eval-text",
            help=f"Held-out text file for the loss; its first 2,048 tokens are scored. Default: {EVAL_HELP}.",
        ),
    ] = None,
    dataset: DatasetOpt = None,
    max_texts: o.MaxTexts = None,
    streaming: o.Streaming = False,
    split: o.Split = None,
    no_eval: NoEval = False,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep", help="Rank blocks: skip each alone (loss increase, Block Influence, angular distance)."
        ),
    ] = False,
    plot: o.Plot = None,
    html: o.Html = None,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Run the full model and the model with blocks skipped from the same prompt; compare texts and metrics.

    Without --skip or --keep it skips the odd blocks. Greedy by default so the runs are directly comparable
    (--sample samples every run with the same seed). With --sweep, rank every block instead.

    Held-out loss, KL and top-1 agreement are scored in batches over --eval-text or every text of --dataset
    (texts longer than the context are cut into windows); --no-eval skips them. Generation speed is in --json
    only, marked as one cold run.

    --html FILE writes the interactive view: the continuations aligned token by token, each token coloured by
    KL(full || run) on the full continuation's prefix, the first divergence marked.
    """
    from probes.cli.common import Target, eval_choice, other_rank
    from probes.core.layers import format_layers
    from probes.io import check_figure_path, save_figure
    from probes.meta import model_meta
    from probes.progress import bar_progress
    from probes.studies.defaults import defaults_for_name
    from probes.studies.settings import prune_config

    cfg = prune_config(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        seed=seed,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        bos=bos,
    )
    if plot:
        check_figure_path(plot, force=force)
    if html:
        from probes.views.page import check_html_path

        if sweep:
            raise ProbesError("--html: the block sweep has no interactive view; use --plot (or drop --sweep)")
        check_html_path(html, force=force)
    if sweep and (skip or keep):
        raise ProbesError("--sweep ranks every block by itself; leave out --skip/--keep (or drop --sweep)")
    unused = o.given(
        ctx,
        "prompt",
        "max_new_tokens",
        "greedy",
        "num_samples",
        "temperature",
        "top_k",
        "top_p",
        "seed",
        "bos",
    )
    if sweep and unused:
        raise ProbesError(
            f"--sweep scores the held-out text only; {', '.join(unused)} would be ignored (drop them or "
            "--sweep)"
        )
    drawn = o.given(ctx, "temperature", "top_k", "top_p")
    if cfg.is_greedy and drawn:
        raise ProbesError(
            f"{', '.join(drawn)}: sampling options need --sample (prune decodes greedily by default)"
        )
    evaluate, held = eval_choice(
        eval_text, dataset, max_texts=max_texts, split=split, streaming=streaming, evaluate=not no_eval
    )
    if sweep and not evaluate:
        raise ProbesError("--sweep ranks blocks by their held-out loss; it cannot run with --no-eval")
    if not sweep and not skip and not keep:
        skip = ["odd"]
    if prompt is None:
        prompt = defaults_for_name(model).prune_prompt
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads, ranks=True)
    if evaluate:
        target.windows()
    specs = [(s, target.layers(s)) for s in skip or []] + [
        (format_layers(layers), layers) for layers in (target.skipped(keep=k) for k in keep or [])
    ]
    m = target.load()
    from probes.studies.prune.compare import compare_pruned, sweep_blocks

    meta = model_meta(m)
    if sweep:
        result = sweep_blocks(m, eval_text=held, progress=bar_progress(quiet=json))
        render = _render_sweep
    else:
        result = compare_pruned(
            m,
            prompt,
            [s for s, _ in specs],
            cfg,
            eval_text=held,
            evaluate=evaluate,
            progress=bar_progress(quiet=json),
        )
        render = _render
    if other_rank():
        return
    if plot:
        save_figure(result.figure(), plot, force=force)
        log(f"wrote {plot}")
    if html:
        result.to_html(html, force=force)
        log(f"wrote the interactive prune view to {html}")
    emit({**meta, **result.as_dict()}, json, render)


def _render(d: dict) -> str:
    from probes.core.layers import format_layers
    from probes.core.sampling import SamplingConfig
    from probes.studies.prune.compare import METRIC_LABELS

    cfg = SamplingConfig.from_dict(d["config"])
    how = "greedy" if cfg.is_greedy else f"sampled ({cfg.label()}, seed {cfg.seed})"
    out = [
        f"model {d['model']} ({d['model_source']['n_layers']} blocks); prompt {d['prompt']!r}; "
        f"{cfg.max_new_tokens} new tokens, {how}",
        "",
    ]
    for r in d["runs"]:
        title = (
            "FULL MODEL"
            if r["name"] == "full"
            else (
                f"SKIP {r['name']} (blocks {format_layers(r['skipped_blocks'])}; kept "
                f"{format_layers(r['kept_blocks'])})"
            )
        )
        out.append(f"=== {title} ===")
        for k, smp in enumerate(r["samples"], 1):
            if len(r["samples"]) > 1:
                out.append(f"--- sample {k} ---")
            out.append(d["prompt"] + smp["text"])
        out.append("")
    rows = []
    for key, label in METRIC_LABELS.items():
        rows.append([label] + [r["metrics"].get(key) for r in d["runs"]])
    out.append(
        table(rows, header=["metric"] + [r["name"] for r in d["runs"]], align="l" + "r" * len(d["runs"]))
    )
    out.append("")
    held = (
        f"held-out text: {d['eval_text']} ({_scored(d)})"
        if d["eval_text"]
        else "held-out scoring: off (--no-eval)"
    )
    out.append(
        f"{held}. KL and agreement are teacher-forced on the full model's continuation "
        "(and on the held-out text); perplexity scores each run's text under the full model. "
        "Generation speed: --json only (one cold run, not a measurement)."
    )
    return "\n".join(out)


def _scored(d: dict) -> str:
    """'3 texts, 257 tokens scored' ('257 tokens scored' for one text)."""
    from probes.numbers import count

    texts = f"{count(d['eval_texts'], 'text')}, " if d.get("eval_texts", 1) != 1 else ""
    return f"{texts}{count(d['eval_tokens'], 'token')} scored"


def _render_sweep(d: dict) -> str:
    from probes.core.layers import format_layers

    out = [
        f"model {d['model']}: skipping one block at a time; full-model held-out loss {d['base_loss']:.4f} "
        f"nats/token on {d['eval_text']} ({_scored(d)}); KL in nats",
        "",
    ]
    rows = [
        [
            b["block"],
            b["rank"],
            b["loss"],
            b["loss_increase"],
            b["kl"],
            b["top1_agreement"],
            b["block_influence"],
            b["angular_distance"],
        ]
        for b in d["blocks"]
    ]
    out.append(
        table(rows, header=["block", "rank", "loss", "change", "KL", "top-1 agr.", "influence", "angular"])
    )
    out.append("")
    out.append(
        "blocks ranked by loss increase when skipped: " + ", ".join(map(str, d["ranking_by_loss_increase"]))
    )
    out.append("")
    rows = [
        [
            s["name"],
            format_layers(s["skipped_blocks"]),
            s["loss"],
            s["loss_increase"],
            s["kl"],
            s["top1_agreement"],
        ]
        for s in d["strategies"]
    ]
    out.append(
        table(rows, header=["strategy", "skipped", "loss", "change", "KL", "top-1 agr."], align="llrrrr")
    )
    return "\n".join(out)
