"""Model info: architecture numbers, where the weights live, and the hook-point families."""

from __future__ import annotations

import re

from probes.core.load import source_of
from probes.meta import versions


def checkpoint_params(config) -> int:
    """Parameters of the GPT-2 checkpoint itself, from its transformers config.

    Not the bridge's `parameters()`: in compatibility mode it holds split Q/K/V copies beside the
    fused `c_attn` and an unembedding untied from `wte`, about half as much again.
    """
    d, v, ctx, n = config.n_embd, config.vocab_size, config.n_positions, config.n_layer
    mlp = config.n_inner or 4 * d
    block = (
        2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * mlp + mlp) + (mlp * d + d)
    )  # ln_1, attn, ln_2, mlp
    head = 0 if getattr(config, "tie_word_embeddings", True) else v * d
    return v * d + ctx * d + n * block + 2 * d + head  # wte, wpe, blocks, ln_f, untied lm_head


def model_info(model) -> dict:
    """A dict describing `model` (what `probes info` prints)."""
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
