"""`probes report`: the whole study in one command, as Markdown (and HTML) with figures."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log
from probes.core.sampling import REPORT_SAMPLING as D
from probes.studies.defaults import CLASSIC_PRUNE_PROMPT, EVAL_HELP, LENS_PROMPT_HELP, PROMPT_HELP
from probes.studies.embeddings.forms import DEFAULT_TOKEN_FORM


def report(
    out: Annotated[
        str, typer.Option("--out", "-o", help="Folder for report.md, index.html and the figures.")
    ] = "study",
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt",
            "--start",
            "-p",
            help=(
                "Prompt for sampling, pruning and the generation lens; FILE:path reads a file. Default: "
                f"{PROMPT_HELP}; pruning {CLASSIC_PRUNE_PROMPT!r} for others."
            ),
        ),
    ] = None,
    lens_prompt: Annotated[
        str | None,
        typer.Option(
            "--lens-prompt", help=f"Prompt for the logit-lens heatmaps. Default: {LENS_PROMPT_HELP}."
        ),
    ] = None,
    max_new_tokens: o.MaxNewTokens = D.max_new_tokens,
    num_samples: o.NumSamples = D.num_samples,
    seed: o.Seed = D.seed,
    eval_text: Annotated[
        str | None,
        typer.Option("--eval-text", help=f"Held-out text for the pruning losses. Default: {EVAL_HELP}."),
    ] = None,
    no_eval: Annotated[
        bool,
        typer.Option(
            "--no-eval",
            help=(
                "Skip held-out scoring (the pruning losses and the block sweep); every other section stays "
                "and the report says so."
            ),
        ),
    ] = False,
    common: o.Common = None,
    rare: o.Rare = None,
    words: o.Words = None,
    token_form: o.TokenForm = DEFAULT_TOKEN_FORM,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Run the classic study (sampling, embeddings, skipped blocks, logit lens) and write a report."""
    from probes.cli.common import Target
    from probes.meta import model_meta
    from probes.report import build_report, check_report_args
    from probes.studies.defaults import defaults_for_name
    from probes.studies.embeddings.forms import parse_words

    chosen = {
        "common": parse_words(common, "--common"),
        "rare": parse_words(rare, "--rare"),
        "words": parse_words(words, "--words"),
    }
    chosen = {k: v for k, v in chosen.items() if v is not None} | {"token_form": token_form}
    cfg = check_report_args(
        out,
        D,
        force=force,
        eval_text=eval_text,
        evaluate=not no_eval,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        seed=seed,
        words=chosen,
    )
    d = defaults_for_name(model)
    given = lambda value, default: default if value is None else value  # noqa: E731
    prompts = [given(prompt, d.prompt), given(prompt, d.prune_prompt), given(lens_prompt, d.lens_prompt)]
    target = Target(model, device, dtype, *prompts, threads=threads)
    if not no_eval:
        target.windows()  # the held-out text is scored in windows
    m = target.load()
    command = (
        "probes report " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if len(sys.argv) > 1
        else "probes report"
    )
    path = build_report(
        m,
        out,
        prompt=prompt,
        lens_prompt=lens_prompt,
        config=cfg,
        command=command,
        force=force,
        eval_text=eval_text,
        evaluate=not no_eval,
        words=chosen,
        progress=log,
    )
    log(f"wrote {path} (and index.html, figures)")
    figures = sorted(p.name for p in path.parent.glob("*.png"))
    emit(
        {
            **model_meta(m),
            "report": str(path),
            "html": str(path.parent / "index.html"),
            "figures": figures,
            "seed": seed,
        },
        json,
        lambda d: d["report"],
    )
