"""`probes info`: what a model is and where it lives."""

from __future__ import annotations

from probes.cli import options as o
from probes.cli.output import emit, table


def info(
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Describe a model: blocks, heads, widths, vocabulary, context, parameters, dtype, device and hook
    points."""
    from probes.cli.common import Target
    from probes.core.info import model_info

    m = Target(model, device, dtype, threads=threads).load()
    emit(model_info(m), json, _render)


def _render(d: dict) -> str:
    rows = [
        [k, d[k]]
        for k in (
            "name",
            "architecture",
            "runner",
            "source",
            "path",
            "n_layers",
            "n_heads",
            "d_model",
            "d_head",
            "d_mlp",
            "d_vocab",
            "n_ctx",
            "n_params",
            "dtype",
            "device",
            "sha256",
        )
    ]
    rows.append(
        ["hook points", f"{d['n_hook_points']} in all; per block: " + ", ".join(d["block_hook_families"])]
    )
    rows.append(
        [
            "",
            "inside each block: "
            + ", ".join(f for f in d["block_hook_families_all"] if not f.startswith("hook_")),
        ]
    )
    rows.append(["", "model-level: " + ", ".join(d["model_hook_points"])])
    return table(rows, align="ll")
