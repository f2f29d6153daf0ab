"""Run metadata recorded in every JSON output and saved file: model, checksum, versions, skips."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def versions() -> dict:
    out = {}
    for dist in ("probes", "transformer-lens", "transformers", "torch"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def model_meta(model) -> dict:
    """{'model', 'model_source', 'versions', 'skipped_blocks'} for `model` as it is now."""
    from probes.core.load import source_of
    from probes.core.skip import skipped_blocks

    src = source_of(model)
    return {
        "model": src.name,
        "model_source": {**src.as_dict(), "n_layers": model.cfg.n_layers, "d_model": model.cfg.d_model},
        "versions": versions(),
        "skipped_blocks": skipped_blocks(model),
    }
