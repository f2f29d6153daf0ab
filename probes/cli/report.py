"""`probes report`: the whole study in one command, as Markdown (and HTML) with figures."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Optional

import typer

from probes.cli import options as o
from probes.cli.output import emit, handle_errors, log
from probes.errors import ProbesError


@handle_errors
def report(
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for report.md, report.html and the figures.")] = "study",
    prompt: o.Prompt = "ROMEO:",
    lens_prompt: Annotated[str, typer.Option("--lens-prompt", help="Prompt for the logit-lens heatmaps.")] = "JULIET: Good night, good night! Parting is such sweet sorrow",
    max_new_tokens: o.MaxNewTokens = 60,
    num_samples: o.NumSamples = 2,
    seed: o.Seed = 1337,
    eval_text: Annotated[Optional[str], typer.Option("--eval-text", help="Held-out text for the pruning losses (default: the model's own, else the bundled Shakespeare passage).")] = None,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
) -> None:
    """Run the classic study (sampling, embeddings, skipped blocks, logit lens) and write a report."""
    from probes.generation import check_counts
    from probes.report import build_report, check_out_dir

    check_counts(num_samples, max_new_tokens)
    check_out_dir(out, force)
    if eval_text is not None:
        from pathlib import Path

        if not Path(eval_text).expanduser().is_file():
            raise ProbesError(f"cannot read --eval-text {eval_text!r}: no such file")
    from probes.cli.common import load_model, model_meta

    m = load_model(model, device, dtype)
    command = "probes report " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "probes report"
    path = build_report(m, out, prompt=prompt, lens_prompt=lens_prompt, max_new_tokens=max_new_tokens,
                        num_samples=num_samples, seed=seed, command=command, force=force, eval_text=eval_text,
                        progress=log)
    log(f"wrote {path} (and report.html, figures)")
    figures = sorted(p.name for p in path.parent.glob("*.png"))
    emit({**model_meta(m), "report": str(path), "html": str(path.with_suffix(".html")), "figures": figures,
          "seed": seed}, json, lambda d: d["report"])
