"""Read a capture back: one prompt's safetensors file as `Activations`, a dataset capture's folder as
`ShardedActivations`."""

from __future__ import annotations

import os
from pathlib import Path

from probes.errors import ProbesError
from probes.studies.capture.activations import Activations
from probes.studies.capture.format import FORMAT, CaptureMeta
from probes.studies.capture.shards import ShardedActivations


def load_activations(path: str | os.PathLike):
    """Read a file written by `Activations.save`; a folder written by a dataset capture gives its lazy
    `ShardedActivations`."""
    from safetensors import safe_open

    path = Path(path).expanduser()
    if path.is_dir():
        return ShardedActivations(path)
    if not path.is_file():
        raise ProbesError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:
        raise ProbesError(
            f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})"
        ) from None
    if raw.get("format") != FORMAT or "tokens" not in tensors:
        raise ProbesError(
            f"{path}: a safetensors file, but not one written by probes capture (format "
            f"{raw.get('format')!r})"
        )
    try:
        meta = CaptureMeta.from_metadata(raw, str(path))
    except (TypeError, ValueError) as e:
        raise ProbesError(f"{path}: its capture metadata is damaged ({e})") from None
    tokens = tensors.pop("tokens")
    return Activations(tensors, tokens, meta)
