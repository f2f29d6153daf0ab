"""The capture file format: its tag, the metadata record (`CaptureMeta`), the order of hook names, the writer.

Shared by one prompt's `Activations`, a dataset capture's shards and the reader of both; it imports
no torch, so the CLI can check a capture folder before loading a model.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from probes.core.hooks import SHORT_NAMES, split_name
from probes.jsonread import parse_json

FORMAT = "probes.activations/1"


@dataclass(frozen=True)
class CaptureMeta:
    """What a capture recorded, typed; it writes itself to and reads itself from safetensors metadata.

    Safetensors metadata holds strings only: text fields are stored as they are, every other
    field as JSON, under the field's own name (`versions` as one key per package).
    """

    model: str
    model_source: str  # bundled, hub, local or external
    model_path: str
    model_sha256: str
    n_layers: int
    d_model: int
    n_heads: int
    dtype: str
    prompt: str
    bos: bool  # whether position 0 is <|endoftext|>
    n_prompt_tokens: int
    str_tokens: list[str]
    hooks: list[str]  # as requested
    layers: list[int]  # blocks short names were expanded to
    skipped_blocks: list[int]
    filled: dict[str, str]  # what stands in for hooks skipped blocks never fire
    absent: list[str]  # requested hooks skipped blocks never compute (not in the file)
    weights_processed: bool = True  # compatibility mode: LayerNorm folded, writing weights centred
    versions: dict[str, str | None] = field(default_factory=dict)
    generated: int = 0
    seed: int | None = None
    sampling: dict | None = None
    generated_text: str | None = None

    _FILE_KEYS = {"str_tokens": "token_strings"}  # field -> its key in the file, where the two differ
    _VERSION_KEYS = {
        "probes": "probes_version",
        "transformer-lens": "transformer_lens_version",
        "transformers": "transformers_version",
        "torch": "torch_version",
    }

    def __repr__(self) -> str:
        gen = f", {self.generated} generated" if self.generated else ""
        return (
            f"CaptureMeta({self.model!r} {self.model_sha256}, {len(self.str_tokens)} positions{gen}, "
            f"hooks {','.join(self.hooks)}, skipped {self.skipped_blocks})"
        )

    def to_metadata(self) -> dict[str, str]:
        out = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "versions":
                out.update(
                    {key: str(value[dist]) for dist, key in self._VERSION_KEYS.items() if value.get(dist)}
                )
            elif value is not None:
                out[self._FILE_KEYS.get(f.name, f.name)] = (
                    value if _is_text(f) else json.dumps(value, ensure_ascii=False)
                )
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str = "capture metadata") -> CaptureMeta:
        """The record in a file's metadata; `where` (the file) starts the message of a damaged field."""
        values = {}
        for f in dataclasses.fields(cls):
            if f.name == "versions":
                values["versions"] = {
                    dist: meta.get(key) if meta.get(key) != "None" else None
                    for dist, key in cls._VERSION_KEYS.items()
                }
            elif cls._FILE_KEYS.get(f.name, f.name) in meta:
                key = cls._FILE_KEYS.get(f.name, f.name)
                values[f.name] = meta[key] if _is_text(f) else parse_json(meta[key], f"{where}: its {key}")
        return cls(**values)


def _is_text(f) -> bool:
    hints = typing.get_type_hints(CaptureMeta)
    return hints[f.name] in (str, str | None)


def hook_order(name: str) -> tuple:
    """Sort key: embeddings, then blocks by index (short-named hooks in SHORT_NAMES order), then the final
    norm."""
    block, suffix = split_name(name)
    if block is None:
        block = float("inf") if name.startswith(("ln_final", "unembed", "hook_unembed")) else -1
    ranks = list(SHORT_NAMES.values())
    return (block, ranks.index(suffix) if suffix in ranks else len(ranks), suffix)


def write_tensors(tensors: dict, path: str, metadata: dict[str, str]) -> None:
    """Write {name: tensor} and string `metadata` to the safetensors file `path` (a temporary name: the
    callers rename it into place)."""
    from safetensors.torch import save_file

    save_file(tensors, path, metadata=metadata)
