"""`probes next-token`: the next-token distribution under several temperatures and top-k / top-p."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from probes.cli import options as o
from probes.cli.output import emit, handle_errors, show_token, table
from probes.errors import ProbesError


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()] or [float("nan")]
    except ValueError:
        raise ProbesError(f"{what} must be a comma list of numbers like 0.1,1,10, got {text!r}") from None


def _ints(text: str | None, what: str) -> list[int | None]:
    if text is None or text.strip().lower() in ("", "none"):
        return [None]
    out = []
    for x in text.split(","):
        x = x.strip().lower()
        if x in ("none", "0"):
            out.append(None)
            continue
        try:
            out.append(int(x))
        except ValueError:
            raise ProbesError(f"{what} must be a comma list of integers like 2,200 (none for no top-k), got {text!r}") from None
    return out


@handle_errors
def next_token(
    prompt: o.Prompt = "A long time ago in a galaxy far, far away",
    temperature: Annotated[str, typer.Option("--temperature", "-t", help="Comma list of temperatures, e.g. 0.1,1,10.")] = "0.1,1,10",
    top_k: Annotated[Optional[str], typer.Option("--top-k", help="Comma list of top-k values (none = no top-k), e.g. 2,200.")] = "none",
    top_p: Annotated[Optional[str], typer.Option("--top-p", help="Comma list of top-p values in (0, 1], e.g. 0.9.")] = None,
    top: Annotated[int, typer.Option("--top", help="How many top tokens to show per setting.")] = 10,
    bos: o.Bos = True,
    plot: o.Plot = None,
    skip: o.Skip = None,
    keep: o.Keep = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
) -> None:
    """Show how temperature and top-k / top-p reshape the next-token distribution (every combination)."""
    temps = _floats(temperature, "--temperature")
    ks = _ints(top_k, "--top-k")
    ps = [None] if top_p is None else _floats(top_p, "--top-p")
    if top < 1:
        raise ProbesError(f"--top must be >= 1, got {top}")
    from probes.sampling import SamplingSettings

    for t in temps:
        for k in ks:
            for p in ps:
                SamplingSettings(t, k, p)
    from probes.io import check_figure_path, save_figure

    if plot:
        check_figure_path(plot)
    import probes
    from probes.cli.common import load_model, model_meta
    from probes.cli.output import log

    m = load_model(model, device, dtype)
    with probes.skip(m, skip, keep=keep):
        report = probes.next_token_distribution(m, prompt, temperature=temps, top_k=ks, top_p=ps, top=top, bos=bos)
        meta = model_meta(m)
    if plot:
        save_figure(report.figure(), plot)
        log(f"wrote {plot}")
    emit({**meta, **report.as_dict()}, json, _render)


def _render(d: dict) -> str:
    out = [f"next token after {d['prompt']!r} ({len(d['prompt_tokens'])} tokens fed)"]
    for s in [d["raw"]] + d["settings"]:
        label = "raw (T=1, no truncation)" if s is d["raw"] else s["label"]
        out.append("")
        out.append(f"{label}: entropy {s['entropy_bits']:.3f} bits, 99% of the mass in {s['tokens_for_99']} token(s), "
                   f"{s['support']} token(s) possible")
        out.append(table([[show_token(t), i, p] for t, i, p in zip(s["top_tokens"], s["top_ids"], s["top_probs"])],
                         header=["token", "id", "prob"]))
    return "\n".join(out)
