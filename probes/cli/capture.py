"""`probes capture`: record per-layer states of a prompt (or a generation) into a safetensors file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from probes.cli import options as o
from probes.cli.output import emit, handle_errors, log, table

_PLOT_TYPES = (".png", ".pdf", ".svg")


@handle_errors
def capture(
    out: Annotated[str, typer.Option("--out", "-o", help="The safetensors file to write (atomically).")],
    prompt: o.Prompt = None,
    hooks: Annotated[
        str,
        typer.Option("--hooks", help="Comma list of hooks: short names (resid_pre, resid_mid, resid_post, attn_out, "
                     "mlp_out, pattern, attn_scores, q, k, v, z, mlp_pre, mlp_post), block-relative (attn.hook_pattern) "
                     "or full names (blocks.3.hook_resid_pre)."),
    ] = "resid_pre,resid_post",
    layers: Annotated[
        Optional[str], typer.Option("--layers", help="Blocks to record short names at: a layer spec like 0-3, odd (default: all).")
    ] = None,
    skip: o.Skip = None,
    keep: o.Keep = None,
    generate: Annotated[
        Optional[int], typer.Option("--generate", help="Also sample N tokens and record their positions step by step.")
    ] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", "-t", help="Sampling temperature with --generate (default 0.8); 0 means greedy.")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Top-k with --generate (default 200; 0: no top-k).")] = None,
    top_p: o.TopP = None,
    greedy: o.Greedy = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed with --generate (default 1337).")] = None,
    bos: o.Bos = True,
    force: o.Force = False,
    plot: o.Plot = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
) -> None:
    """Capture the residual stream (or any hook points) at every block and save them as safetensors.

    The file holds one tensor per hook name (blocks.{i}.hook_resid_pre, ...), the token ids and the run's metadata.
    """
    sampling = {k: v for k, v in dict(temperature=temperature, top_p=top_p, seed=seed).items() if v is not None}
    if top_k is not None:
        sampling["top_k"] = top_k or None
    if greedy:
        sampling["greedy"] = True
    _check_args(prompt, out, force, plot, generate, sampling)
    from probes.recording import check_generation

    check_generation(generate, sampling)  # bad sampling values fail before the model loads

    import probes
    from probes.cli.common import load_model

    m = load_model(model, device, dtype)
    with probes.skip(m, skip, keep=keep):
        acts = probes.capture(m, prompt, hooks=hooks.split(","), layers=layers, bos=bos, generate=generate, **sampling)
    path = acts.save(out, force=force)
    log(f"wrote {len(acts)} tensors to {path}")
    if plot:
        from probes.io import save_figure

        save_figure(acts.figure(), plot, dpi=120)
        log(f"wrote {plot}")
    emit(_summary(acts, path, plot), json, _render)


def _check_args(prompt: str | None, out: str, force: bool, plot: str | None, generate: int | None, sampling: dict) -> None:
    """Everything that can be wrong without the model, checked before loading it."""
    from probes.io import check_output
    from probes.errors import ProbesError

    if prompt is None:
        raise ProbesError("give a prompt: --prompt TEXT (or --prompt FILE:path)")
    check_output(out, force)
    if plot:
        from probes.io import check_figure_path

        p = Path(plot)
        if p.suffix.lower() not in _PLOT_TYPES:
            raise ProbesError(f"--plot {plot}: use a file name ending in {', '.join(_PLOT_TYPES)}")
        check_figure_path(p)
        if p.resolve() == Path(out).resolve():
            raise ProbesError("--plot and --out name the same file")
    if generate is not None and generate < 1:
        raise ProbesError(f"--generate {generate}: give a number of tokens >= 1 (or leave it out)")
    if sampling and generate is None:
        flags = ", ".join("--" + k.replace("_", "-") for k in sampling)
        raise ProbesError(f"{flags} only apply with --generate N")


def _summary(acts, path, plot) -> dict:
    norms = acts.norms()
    cos = acts.cosines()
    rows = []
    for i in sorted({i for fam in norms for i in acts.layers_of(fam)} | set(cos)):
        row = {"layer": i, "skipped": i in acts.skipped_blocks}
        for fam, values in norms.items():
            layers = acts.layers_of(fam)
            row[fam] = float(values[layers.index(i)]) if i in layers else None
        row["cosine"] = cos.get(i)
        rows.append(row)
    return {
        "out": str(path), "plot": plot, "model": acts.meta["model"], "model_sha256": acts.meta["model_sha256"],
        "versions": __import__("probes.meta", fromlist=["versions"]).versions(),
        "prompt": acts.prompt, "tokens": acts.tokens.tolist(), "token_strings": acts.token_strings,
        "generated": int(acts.meta.get("generated", 0)), "seed": int(acts.meta["seed"]) if "seed" in acts.meta else None,
        "skipped_blocks": acts.skipped_blocks, "absent": acts.absent,
        "tensors": {k: list(v.shape) for k, v in acts.items()},
        "norm_excludes_bos": acts.bos and len(acts.tokens) > 1, "families": list(norms), "layers": rows,
    }


def _render(d: dict) -> str:
    lines = [f"{d['out']}: {len(d['tensors'])} tensors, {len(d['tokens'])} positions, model {d['model']}"]
    if d["generated"]:
        lines.append(f"generated {d['generated']} tokens (seed {d['seed']})")
    if d["skipped_blocks"]:
        lines.append(f"skipped blocks: {', '.join(map(str, d['skipped_blocks']))}")
    if d["absent"]:
        lines.append(f"not computed in skipped blocks (left out): {len(d['absent'])} tensors")
    if d["layers"]:
        header = ["layer", *d["families"], "cosine"]
        rows = [[r["layer"] if not r["skipped"] else f"{r['layer']} (skipped)",
                 *[r[f] if r[f] is not None else float("nan") for f in d["families"]],
                 r["cosine"] if r["cosine"] is not None else float("nan")] for r in d["layers"]]
        what = "mean L2 norm over positions" + (" (BOS left out)" if d["norm_excludes_bos"] else "")
        lines += ["", f"{what}; cosine: the stream before vs after the block", table(rows, header, "l" + "r" * (len(header) - 1))]
    return "\n".join(lines)
