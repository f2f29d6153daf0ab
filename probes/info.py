"""Model info: architecture numbers, where the weights live, and the hook-point families."""

from __future__ import annotations

import re

from probes.meta import versions
from probes.model import source_of


def model_info(model) -> dict:
    """A dict describing `model` (what `probes info` prints)."""
    cfg = model.cfg
    src = source_of(model)
    names = list(model.hook_dict)
    families = sorted({re.sub(r"^blocks\.\d+\.", "", n) for n in names if n.startswith("blocks.")},
                      key=lambda n: (n.count("."), n))
    top = [n for n in names if not n.startswith("blocks.")]
    params = sum(p.numel() for p in model.original_model.parameters())
    return {
        "name": src.name, "source": src.kind, "path": src.path, "sha256": src.checksum,
        "n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_head": cfg.d_head,
        "d_mlp": cfg.d_mlp, "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx, "n_params": params,
        "dtype": str(cfg.dtype).removeprefix("torch."), "device": str(cfg.device),
        "versions": versions(),
        "n_hook_points": len(names), "block_hook_families": [f for f in families if f.startswith("hook_")],
        "block_hook_families_all": families, "model_hook_points": [n for n in top if n.startswith("hook_") or n.count(".") == 1],
    }
