"""GGUF files as models: dequantised once by transformers into a cached checkpoint folder.

transformers reads a GGUF file (with the `gguf` package) and dequantises its tensors to float. That
takes seconds to minutes, so the result is kept as an ordinary safetensors folder under the probes
cache, keyed by the file's checksum, and every later load reads that folder. The model's recorded
source stays the GGUF file and its checksum.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from probes.errors import ModelLoadError

MARKER = "probes-gguf.json"  # written last: a folder without it is not a finished conversion


def cache_root() -> Path:
    """Where converted models are kept: $PROBES_CACHE, else ~/.cache/probes."""
    root = os.environ.get("PROBES_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "probes"
    )
    return Path(root) / "gguf"


def require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError(
            "reading a GGUF file needs the gguf package: pip install 'probes[gguf]' (or pip install gguf)"
        )


def converted(path: str, checksum: str) -> Path:
    """The checkpoint folder of GGUF file `path` (float32 safetensors and its tokenizer), made once."""
    folder = cache_root() / checksum
    if (folder / MARKER).is_file():
        return folder
    require_gguf()
    from probes.io import staged_folder

    folder.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(folder, lambda tmp: _place(tmp, folder)) as tmp:
        _convert(Path(path), tmp)
        (tmp / MARKER).write_text(json.dumps({"gguf": str(Path(path).resolve()), "sha256": checksum}))
    return folder


def _place(tmp: Path, folder: Path) -> None:
    try:
        tmp.rename(folder)
    except OSError:  # another process finished the same conversion first: keep theirs
        if not (folder / MARKER).is_file():
            raise
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _convert(path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except Exception as e:  # an unsupported architecture or quantisation, a damaged file: one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelLoadError(f"cannot read GGUF file {path}: {first}") from None
    # The tensors are float now; transformers would refuse to save a model it still marks quantised.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
