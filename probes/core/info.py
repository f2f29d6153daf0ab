"""Model info: architecture numbers, where the weights live, and the hook-point families."""

from __future__ import annotations

import re

from probes.core.load import source_of
from probes.meta import versions


def checkpoint_params(config) -> int:
    """Parameters of the checkpoint itself, counted on the model its transformers config builds on the meta
    device (a tied weight once).

    Not the bridge's `parameters()`: in compatibility mode it holds split Q/K/V copies beside the
    fused projections and an unembedding untied from the embedding, about half as much again.
    """
    import warnings

    import torch
    from transformers import AutoModelForCausalLM

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def model_info(model) -> dict:
    """A dict describing `model` (what `probes info` prints)."""
    from probes.core.runner import runner_for

    cfg = model.cfg
    src = source_of(model)
    names = list(model.hook_dict)
    families = sorted(
        {re.sub(r"^blocks\.\d+\.", "", n) for n in names if n.startswith("blocks.")},
        key=lambda n: (n.count("."), n),
    )
    top = [n for n in names if not n.startswith("blocks.")]
    params = checkpoint_params(model.original_model.config)
    return {
        "name": src.name,
        "architecture": type(model.original_model).__name__,
        "runner": runner_for(model).kind,  # fused (GPT-2's fast path) or hooked (the bridge)
        "source": src.kind,
        "path": src.path,
        "sha256": src.checksum,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "d_model": cfg.d_model,
        "d_head": cfg.d_head,
        "d_mlp": cfg.d_mlp,
        "d_vocab": cfg.d_vocab,
        "n_ctx": cfg.n_ctx,
        "n_params": params,
        "dtype": str(cfg.dtype).removeprefix("torch."),
        "device": str(cfg.device),
        "versions": versions(),
        "n_hook_points": len(names),
        "block_hook_families": [f for f in families if f.startswith("hook_")],
        "block_hook_families_all": families,
        "model_hook_points": [n for n in top if n.startswith("hook_") or n.count(".") == 1],
    }
