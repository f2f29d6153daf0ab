"""`probes capture`: record per-layer states of a prompt (or a generation) into a safetensors file, or of a
dataset into shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.numbers import count


def capture(
    ctx: typer.Context,
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help=(
                "The safetensors file to write (atomically); with --dataset, a folder of shards and "
                "index.json."
            ),
        ),
    ],
    prompt: o.Prompt = None,
    dataset: o.dataset_option(
        "Capture every text of a dataset into --out (a folder), streamed in shards"
    ) = None,
    max_texts: o.MaxTexts = None,
    streaming: o.Streaming = False,
    split: o.Split = None,
    store_dtype: Annotated[
        str | None,
        typer.Option(
            "--store-dtype",
            help=(
                "With --dataset: dtype the shards store, float32, float16 or bfloat16 (default: the compute "
                "--dtype)."
            ),
        ),
    ] = None,
    shard_size: Annotated[
        str,
        typer.Option(
            "--shard-size",
            help=(
                "With --dataset: the most bytes a shard holds (500M, 1G); a text window (up to the context) "
                "is never split, so one larger than this is a shard of its own. Memory holds about three "
                "shards' worth."
            ),
        ),
    ] = "128M",
    hooks: Annotated[
        str,
        typer.Option(
            "--hooks",
            help="Comma list of hooks: short names (resid_pre, resid_mid, resid_post, attn_out, "
            "mlp_out, pattern, attn_scores, q, k, v, z, mlp_pre, mlp_post), block-relative "
            "(attn.hook_pattern) or full names (blocks.3.hook_resid_pre).",
        ),
    ] = "resid_pre,resid_post",
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers", help="Blocks to record short names at: a layer spec like 0-3, odd (default: all)."
        ),
    ] = None,
    skip: o.Skip = None,
    keep: o.Keep = None,
    generate: Annotated[
        int | None,
        typer.Option("--generate", help="Also sample N tokens and record their positions step by step."),
    ] = None,
    temperature: o.Temperature = o.SAMPLING.temperature,
    top_k: o.TopK = o.SAMPLING.top_k,
    top_p: o.TopP = o.SAMPLING.top_p,
    greedy: o.Greedy = o.SAMPLING.greedy,
    seed: o.Seed = o.SAMPLING.seed,
    stop_at_eos: o.StopAtEos = o.SAMPLING.stop_at_eos,
    bos: o.Bos = o.SAMPLING.bos,
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes",
            help="Refuse a capture estimated above this size (bytes, or 500M, 4G; default: 2 GiB).",
        ),
    ] = None,
    force: o.Force = False,
    plot: o.Plot = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Capture the residual stream (or any hook points) at every block and save them as safetensors.

    The file holds one tensor per hook name (blocks.{i}.hook_resid_pre, ...), the token ids and the run's
    metadata. The sampling options apply with --generate only.

    With --dataset, every token of every text is recorded into --out as shards (a (rows, d_model) tensor per
    hook name) and index.json; read them back lazily with probes.load_activations(folder). Rerunning the same
    command resumes after the finished shards.
    """
    import probes
    from probes.cli.common import Target
    from probes.errors import ProbesError
    from probes.io import check_figure_path, check_output, parse_size
    from probes.studies.settings import capture_config

    if dataset is not None:
        if prompt is not None:
            raise ProbesError("--prompt and --dataset: give one")
        one_prompt = o.given(
            ctx,
            "generate",
            "plot",
            "max_bytes",
            "temperature",
            "top_k",
            "top_p",
            "greedy",
            "seed",
            "stop_at_eos",
        )
        if one_prompt:
            raise ProbesError(f"{', '.join(one_prompt)}: apply to one --prompt, not to --dataset")
        _capture_dataset(
            dataset,
            out,
            hooks,
            layers,
            skip,
            keep,
            bos,
            max_texts,
            split,
            streaming,
            store_dtype,
            shard_size,
            force,
            model,
            device,
            dtype,
            threads,
            json,
        )
        return
    with_dataset = o.given(ctx, "max_texts", "split", "streaming", "store_dtype", "shard_size")
    if with_dataset:
        raise ProbesError(f"{', '.join(with_dataset)}: apply only with --dataset")
    if prompt is None:
        raise ProbesError("give a prompt: --prompt TEXT (or --prompt FILE:path), or --dataset FILE")
    sampling = {
        name: value
        for name, value in dict(
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy,
            seed=seed,
            stop_at_eos=stop_at_eos,
        ).items()
        if o.given(ctx, name)
    }
    if sampling and generate is None:
        raise ProbesError(
            f"{', '.join(o.given(ctx, *sampling))}: sampling options apply only with --generate N"
        )
    capture_config(generate, None, sampling)  # bad sampling values fail before the model loads
    limit = {} if max_bytes is None else {"max_bytes": parse_size(max_bytes, "max_bytes")}
    check_output(out, force)
    if plot:
        if Path(plot).expanduser().resolve() == Path(out).expanduser().resolve():
            raise ProbesError("--plot and --out name the same file")
        check_figure_path(plot, force=force)
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads)
    target.hooks(hooks)
    skipped, chosen = target.skipped(skip, keep), target.layers(layers) if layers is not None else None
    m = target.load()
    with probes.skip(m, skipped):
        acts = probes.capture(
            m, prompt, hooks=hooks.split(","), layers=chosen, bos=bos, generate=generate, **limit, **sampling
        )
    path = acts.save(out, force=force)
    log(f"wrote {len(acts)} tensors to {path}")
    if plot:
        from probes.io import save_figure

        save_figure(acts.figure(), plot, dpi=120, force=force)
        log(f"wrote {plot}")
    emit({"out": str(path), "plot": plot, **acts.summary()}, json, _render)


def _capture_dataset(
    dataset,
    out,
    hooks,
    layers,
    skip,
    keep,
    bos,
    max_texts,
    split,
    streaming,
    store_dtype,
    shard_size,
    force,
    model,
    device,
    dtype,
    threads,
    json,
) -> None:
    import probes
    from probes.cli.common import Target, other_rank
    from probes.core.dataset import Dataset
    from probes.core.hooks import check_hook_names, check_row_hooks
    from probes.errors import ProbesError
    from probes.io import parse_size
    from probes.progress import bar_progress
    from probes.studies.capture.shards import check_capture_dir, check_store_dtype

    requested = check_hook_names(hooks)  # again with the block count once config.json is read
    check_row_hooks(requested)
    check_store_dtype(store_dtype)
    size = parse_size(shard_size, "shard_bytes")
    data = Dataset(dataset, split=split, max_texts=max_texts, streaming=streaming)
    n_texts = data.check()
    known = {
        "dataset": data.name,
        "split": data.split,
        "max_texts": data.max_texts,
        "hooks": requested,
        "bos": bos,
        "shard_bytes": size,
        **({"store_dtype": store_dtype} if store_dtype else {}),
    }
    _, before = check_capture_dir(
        out, known, force, streamed=streaming
    )  # a folder holding another capture fails now; the rest is checked once loaded
    if Path(out).suffix.lower() == ".safetensors" and before is None:
        raise ProbesError(
            f"--out {out!r}: with --dataset the capture is a folder of shards and index.json; "
            "give a folder name (a single .safetensors file is for one --prompt)"
        )
    target = Target(model, device, dtype, bos=bos, threads=threads, ranks=True)
    target.hooks(requested)
    target.windows(bos=bos, score=False)
    skipped = target.skipped(skip, keep)
    chosen = target.layers(layers) if layers is not None else None
    log(f"{data.name}: {count(n_texts, 'text') if n_texts is not None else 'streamed'}")
    m = target.load()
    try:
        with probes.skip(m, skipped):
            acts = probes.capture(
                m,
                data,
                hooks=requested,
                layers=chosen,
                bos=bos,
                out=out,
                store_dtype=store_dtype,
                shard_bytes=size,
                force=force,
                progress=bar_progress(quiet=json),
            )
    except KeyboardInterrupt:
        log("the finished shards are kept; rerun the same command to resume")
        raise
    if other_rank():
        return
    d = acts.summary()
    w = d["written"]
    if w["was_complete"]:
        log(f"the capture in {acts.folder} was already complete; nothing written")
    else:
        kept = f" (after the {w['kept']} already there)" if w["kept"] else ""
        log(f"wrote {count(w['new'], 'shard')}{kept} and index.json to {acts.folder}")
    emit(
        d,
        json,
        lambda d: (
            f"{d['out']}: {count(d['texts'], 'text')}, {count(d['rows'], 'row')}, "
            f"{count(len(d['tensors']), 'tensor')} ({d['dtype']}) in {count(d['shards'], 'shard')}, model "
            f"{d['model']}"
        ),
    )


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
        rows = [
            [
                r["layer"] if not r["skipped"] else f"{r['layer']} (skipped)",
                *[r[f] if r[f] is not None else float("nan") for f in d["families"]],
                r["cosine"] if r["cosine"] is not None else float("nan"),
            ]
            for r in d["layers"]
        ]
        what = "mean L2 norm over positions" + (" (BOS left out)" if d["norm_excludes_bos"] else "")
        lines += [
            "",
            f"{what}; cosine: the stream before vs after the block",
            table(rows, header, "l" + "r" * (len(header) - 1)),
        ]
    return "\n".join(lines)
