"""`probes report`: the whole study in one command, as Markdown (and HTML) with figures."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Optional

import typer

from probes.cli import options as o
from probes.cli.output import emit, log
from probes.core.sampling import REPORT_SAMPLING as D


def report(
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for report.md, report.html and the figures.")] = "study",
    prompt: o.Prompt = "ROMEO:",
    lens_prompt: Annotated[str, typer.Option("--lens-prompt", help="Prompt for the logit-lens heatmaps.")] = "JULIET: Good night, good night! Parting is such sweet sorrow",
    max_new_tokens: o.MaxNewTokens = D.max_new_tokens,
    num_samples: o.NumSamples = D.num_samples,
    seed: o.Seed = D.seed,
    eval_text: Annotated[Optional[str], typer.Option("--eval-text", help="Held-out text for the pruning losses (default: the model's own, else the bundled Shakespeare passage).")] = None,
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

    cfg = check_report_args(out, D, force=force, eval_text=eval_text, max_new_tokens=max_new_tokens,
                            num_samples=num_samples, seed=seed)
    m = Target(model, device, dtype, prompt, lens_prompt, threads=threads).load()
    command = "probes report " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "probes report"
    path = build_report(m, out, prompt=prompt, lens_prompt=lens_prompt, config=cfg, command=command, force=force,
                        eval_text=eval_text, progress=log)
    log(f"wrote {path} (and report.html, figures)")
    figures = sorted(p.name for p in path.parent.glob("*.png"))
    emit({**model_meta(m), "report": str(path), "html": str(path.with_suffix(".html")), "figures": figures,
          "seed": seed}, json, lambda d: d["report"])
