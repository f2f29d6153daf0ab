"""`probes next-token`: the next-token distribution under several temperatures and top-k / top-p."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.numbers import show_number
from probes.tokens import show_token


def next_token(
    prompt: o.Prompt = "A long time ago in a galaxy far, far away",
    temperature: Annotated[
        str, typer.Option("--temperature", "-t", help="Comma list of temperatures, e.g. 0.1,1,10.")
    ] = "0.1,1,10",
    top_k: Annotated[
        str, typer.Option("--top-k", help="Comma list of top-k values, e.g. 2,200; 0: no top-k.")
    ] = "0",
    top_p: Annotated[
        str | None, typer.Option("--top-p", help="Comma list of top-p values in (0, 1], e.g. 0.9.")
    ] = None,
    top: o.Top = 10,
    bos: o.Bos = o.SAMPLING.bos,
    plot: o.Plot = None,
    force: o.Force = False,
    skip: o.Skip = None,
    keep: o.Keep = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Show how temperature and top-k / top-p reshape the next-token distribution (every combination)."""
    from probes.cli.common import Target
    from probes.io import check_figure_path, save_figure
    from probes.meta import model_meta
    from probes.studies.settings import grid_configs, sampling_lists
    from probes.tokens import check_top

    grid = grid_configs(*sampling_lists(temperature, top_k, top_p))
    check_top(top)
    if plot:
        check_figure_path(plot, force=force)
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads)
    skipped = target.skipped(skip, keep)
    m = target.load()

    import probes

    with probes.skip(m, skipped):
        dist = probes.next_token_distribution(m, prompt, settings=grid, top=top, bos=bos)
        meta = model_meta(m)
    if plot:
        save_figure(dist.figure(), plot, force=force)
        log(f"wrote {plot}")
    emit({**meta, **dist.as_dict()}, json, _render)


def _render(d: dict) -> str:
    out = [f"next token after {d['prompt']!r} ({len(d['prompt_tokens'])} tokens fed)"]
    for s in [d["raw"]] + d["settings"]:
        label = "raw (T=1, no truncation)" if s is d["raw"] else s["label"]
        out.append("")
        out.append(
            f"{label}: entropy {show_number(s['entropy'], '.3f')} nats, 99% of the mass in "
            f"{s['tokens_for_99']} token(s), {s['support']} token(s) with p >= {s['support_min_prob']:g}"
        )
        out.append(
            table(
                [[show_token(t), i, p] for t, i, p in zip(s["top_str_tokens"], s["top_ids"], s["top_probs"])],
                header=["token", "id", "prob"],
            )
        )
    return "\n".join(out)
