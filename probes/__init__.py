"""probes: hook-based interpretability probes for GPT-2-family models on TransformerLens.

Public API (imported lazily, so `probes --help` does not pay for torch):

    model = probes.load()                       # the bundled Shakespeare GPT-2
    with probes.skip(model, "odd"):
        samples = probes.generate(model, "ROMEO:", max_new_tokens=50)
    lens = probes.logit_lens(model, "To be, or not to be")
    fig = lens.figure()
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "load": "probes.model",
    "source_of": "probes.model",
    "ProbesError": "probes.errors",
    "parse_layers": "probes.layers",
    "skip": "probes.skipping",
    "skipped_layers": "probes.skipping",
    "generate": "probes.generation",
    "Sample": "probes.generation",
    "next_token_distribution": "probes.next_token",
    "logit_lens": "probes.lens",
    "generation_lens": "probes.lens_generation",
    "embeddings": "probes.embedding",
    "capture": "probes.recording",
    "load_activations": "probes.activations",
    "compare_pruned": "probes.prune",
    "sweep_blocks": "probes.prune",
    "hook_count": "probes.hooks",
    "Activations": "probes.activations",
    "attached": "probes.hooks",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'probes' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
