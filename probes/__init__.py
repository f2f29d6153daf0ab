"""probes: hook-based interpretability probes for GPT-2-family models on TransformerLens.

Public API (imported lazily, so `probes --help` does not pay for torch):

    model = probes.load()                       # the bundled Shakespeare GPT-2
    with probes.skip(model, "odd"):
        samples = probes.generate(model, "ROMEO:", max_new_tokens=50)
    lens = probes.logit_lens(model, "To be, or not to be")
    fig = lens.figure()
"""

from __future__ import annotations

__version__ = "0.2.0.dev0"

# name -> module; the engine (probes.core) first, then the studies built on it.
_EXPORTS = {
    "load": "probes.core.load",
    "source_of": "probes.core.load",
    "ProbesError": "probes.errors",
    "parse_layers": "probes.core.layers",
    "skip": "probes.core.skip",
    "skipped_blocks": "probes.core.skip",
    "attached": "probes.core.hooks",
    "hook_count": "probes.core.state",
    "use_fast_path": "probes.core.state",
    "SamplingConfig": "probes.core.sampling",
    "generate": "probes.core.generate",
    "Sample": "probes.core.generate",
    "Samples": "probes.core.generate",
    "Generations": "probes.core.generate",
    "generate_grid": "probes.studies.sampling_grid",
    "SamplingGrid": "probes.studies.sampling_grid",
    "show_token": "probes.tokens",
    "next_token_distribution": "probes.studies.next_token",
    "NextTokenDistribution": "probes.studies.next_token",
    "logit_lens": "probes.studies.lens.logit",
    "LensResult": "probes.studies.lens.logit",
    "lens_over": "probes.studies.lens.dataset",
    "DatasetLens": "probes.studies.lens.dataset_result",
    "generation_lens": "probes.studies.lens.generation",
    "GenerationLens": "probes.studies.lens.generation",
    "TunedLens": "probes.studies.lens.tuned",
    "LogitLens": "probes.studies.lens.lenses",
    "load_tuned_lens": "probes.studies.lens.tuned",
    "train_tuned_lens": "probes.studies.lens.tuned_train",
    "TunedLensConfig": "probes.studies.lens.tuned_train",
    "embeddings": "probes.studies.embeddings.study",
    "Embeddings": "probes.studies.embeddings.study",
    "capture": "probes.studies.capture.prompt",
    "Activations": "probes.studies.capture.activations",
    "CaptureMeta": "probes.studies.capture.format",
    "load_activations": "probes.studies.capture.read",
    "capture_dataset": "probes.studies.capture.dataset",
    "ShardedActivations": "probes.studies.capture.shards",
    "Dataset": "probes.core.dataset",
    "compare_pruned": "probes.studies.prune.compare",
    "PruneComparison": "probes.studies.prune.compare",
    "sweep_blocks": "probes.studies.prune.compare",
    "BlockSweep": "probes.studies.prune.compare",
    "build_report": "probes.report",
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


def __dir__() -> list[str]:
    return sorted(__all__)
