"""Helpers the commands share: loading the model from the shared options, run metadata."""

from __future__ import annotations

from probes.cli.output import log


def load_model(model, device, dtype):
    import probes

    log(f"loading {model or 'the bundled model'} ...")
    return probes.load(model, device=device, dtype=dtype)


def model_meta(model) -> dict:
    from probes.meta import model_meta as meta

    return meta(model)
