"""`probes tuned-lens train`: fit one translator per layer on a text file and save the lens folder."""

from __future__ import annotations

from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit, log, table
from probes.studies.lens.tuned_train import OPTIMIZERS, TunedLensConfig

DEFAULTS = TunedLensConfig()  # torch-free: --help shows the defaults

app = typer.Typer(
    name="tuned-lens",
    help="Tuned lens: train per-layer translators that read each layer as the model's final layer does.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Dataset = o.dataset_option("Training texts", required=True)
Out = Annotated[
    str,
    typer.Option("--out", help="Folder to write the lens into (config.json and translators.safetensors)."),
]
Steps = Annotated[int, typer.Option("--steps", help="Optimiser steps.")]
TokensPerStep = Annotated[
    int, typer.Option("--tokens-per-step", help="Training tokens a step (whole context windows).")
]
Lr = Annotated[
    float | None,
    typer.Option(
        "--lr",
        help=(
            f"Peak learning rate (default {DEFAULTS.lr} for sgd as the paper, 1e-3 for adamw); it warms up, "
            "then decays linearly to 0."
        ),
    ),
]
Optimizer = Annotated[
    str,
    typer.Option(
        "--optimizer", help=f"{' or '.join(OPTIMIZERS)}: SGD with Nesterov momentum (the paper's) or AdamW."
    ),
]
Heldout = Annotated[
    float,
    typer.Option(
        "--heldout",
        help="Fraction of the windows kept out of training and scored before and after (0: none).",
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", help="Seed of the held-out split and the data order (the run is deterministic for it)."
    ),
]


def train(
    dataset: Dataset,
    out: Out,
    steps: Steps = DEFAULTS.steps,
    tokens_per_step: TokensPerStep = DEFAULTS.tokens_per_step,
    lr: Lr = None,
    optimizer: Optimizer = DEFAULTS.optimizer,
    heldout: Heldout = DEFAULTS.heldout,
    seed: Seed = DEFAULTS.seed,
    max_texts: o.MaxTexts = None,
    split: o.Split = None,
    skip: o.Skip = None,
    keep: o.Keep = None,
    bos: o.Bos = DEFAULTS.bos,
    force: o.Force = False,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Train a tuned lens for a model on texts and save it to --out.

    One affine translator per block input, starting from the identity, fit so that each row read through the
    final norm and unembedding matches the model's own output (the loss is KL(final || row), as in Belrose et
    al. 2023). With --skip/--keep the lens is for the pruned model. Use it with `probes lens --tuned FOLDER`.
    """
    from probes.cli.common import Target, other_rank
    from probes.core.dataset import Dataset as Texts
    from probes.meta import model_meta
    from probes.progress import bar_progress
    from probes.studies.lens.tuned import check_lens_dir

    # Everything a user typed is checked before the model loads.
    if lr is None:
        lr = DEFAULTS.lr if optimizer == "sgd" else 1e-3
    cfg = TunedLensConfig(
        steps=steps,
        tokens_per_step=tokens_per_step,
        lr=lr,
        optimizer=optimizer,
        heldout=heldout,
        seed=seed,
        bos=bos,
    )
    folder = check_lens_dir(out, force=force)
    data = Texts(dataset, split=split, max_texts=max_texts)
    data.check()
    target = Target(model, device, dtype, bos=bos, threads=threads, ranks=True)
    target.windows(bos=bos)
    skipped = target.skipped(skip, keep)
    m = target.load()
    import probes

    with probes.skip(m, skipped):
        meta = model_meta(m)
        lens = probes.train_tuned_lens(m, data, cfg, progress=bar_progress(quiet=json))
    if other_rank():
        return
    lens.save(folder, force=force)
    log(f"wrote the tuned lens to {folder}")
    emit({**meta, "out": str(folder), **lens.as_dict()}, json, lambda d: render_training(lens))


app.command("train", help=o.command_help(train.__doc__))(train)


def render_training(lens) -> str:
    """The training summary: tokens, time, and the held-out KL of each row under both lenses."""
    t = lens.meta["training"]
    out = [
        f"tuned lens for {lens.meta['model']} (sha256 {lens.meta['model_sha256']})"
        + (f", blocks {lens.meta['skipped_blocks']} skipped" if lens.meta["skipped_blocks"] else ""),
        f"{t['steps']} steps, {t['tokens']:,} tokens, {t['seconds']:.1f} s "
        f"({t['ms_per_1000_tokens'] / 1000:.2f} s per 1,000 tokens, {t['threads']} threads)",
    ]
    held = t.get("heldout")
    if held:
        from probes.studies.lens.logit import row_labels

        labels = row_labels(lens.n_layers, lens.meta["skipped_blocks"])
        rows = [
            [labels[r], round(a, 4), round(b, 4), f"{a / b:.1f}x" if b > 0 else "-"]
            for r, (a, b) in enumerate(zip(held["kl_logit_lens"], held["kl_tuned_lens"]))
        ]
        out += [
            f"held-out windows ({t['heldout_windows']}): KL(final || row) in {t.get('kl_units', 'bits')}",
            "",
            table(rows, ["row", "logit lens", "tuned lens", "ratio"], align="lrrr"),
        ]
    return "\n".join(out)


def render_comparison(logit, tuned) -> str:
    """Logit lens and tuned lens over one dataset, side by side per row: mean [interval] of KL, cross-entropy,
    top-1."""
    metrics = (
        ("kl_to_final", "KL(final||row)", 3),
        ("next_xent", "xent next", 3),
        ("next_accuracy", "top-1 next", 3),
    )
    cell = lambda m, lo, hi, d: f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"
    rows, header = [], ["row"]
    for _, title, _ in metrics:
        header += [f"{title} logit", "tuned"]
    for a, b in zip(logit.table(), tuned.table()):
        row = [a["row"]]
        for name, _, digits in metrics:
            row += [cell(*a[name], digits), cell(*b[name], digits)]
        rows.append(row)
    return "\n".join(
        [
            f"logit lens against tuned lens ({tuned.tuned_lens}) (the last row is the model's output in "
            "both):",
            "",
            table(rows, header, align="l" + "r" * (len(header) - 1)),
        ]
    )
