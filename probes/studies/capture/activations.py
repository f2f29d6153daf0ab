"""Activations: one sequence's captured per-layer tensors, tokens and metadata, saved to safetensors.

    acts = probes.capture(model, "To be, or not to be", hooks=("resid_pre", "pattern"), layers="0-3")
    resid = acts.stack("resid_pre")       # (layer, pos, d_model)
    acts.save("states.safetensors")       # atomic; refuses to overwrite without force=True
    acts = probes.load_activations("states.safetensors")

Hook names: a short name (`resid_pre`, `pattern`, ... see SHORT_NAMES) or a block-relative name
(`attn.hook_pattern`, `ln1.hook_normalized`) expands to every block in `layers`; a full name
(`blocks.3.hook_resid_pre`, `hook_embed`) is recorded as given. Tensors drop the batch axis:
(pos, d_model) for the stream and block outputs, (heads, pos, pos) for `pattern` / `attn_scores`
(query, key), (pos, heads, d_head) for q/k/v/z.

Skipped blocks (inside `probes.skip`) fire only `hook_resid_pre` and `hook_resid_post`. For them
`resid_mid` is recorded as a copy of `resid_pre` (the stream passes through unchanged), `attn_out`
and `mlp_out` are zeros (the block adds nothing), and every other per-block hook (patterns, q/k/v,
...) is absent: it is left out of the file and listed in the metadata under `absent`.

Values are those of the bridge in compatibility mode: LayerNorm is folded into the next weights and
writing weights are centred, so the residual stream equals transformers' `hidden_states` minus its
per-position mean over d_model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from probes.core.hooks import SHORT_NAMES, short_name, split_name
from probes.core.layers import format_layers
from probes.errors import SpecError, closest
from probes.io import atomic_path, check_output
from probes.studies.capture import format as capture_format
from probes.studies.capture.format import CaptureMeta, hook_order


class _NotCaptured(SpecError, KeyError):
    """A ProbesError for users, a KeyError for Mapping's `in` and `.get`."""

    __str__ = Exception.__str__


class Activations(Mapping):
    """Recorded hook tensors of one sequence: a mapping hook name -> tensor, plus tokens and metadata.

    `tokens` (pos,) int64 ids; `str_tokens` one string a position; `meta` a CaptureMeta.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], tokens: torch.Tensor, meta: CaptureMeta):
        # One canonical order, so a loaded file (safetensors sorts names as text) iterates as captured.
        self.tensors = {k: tensors[k] for k in sorted(tensors, key=hook_order)}
        self.tokens = tokens
        self.meta = meta

    # Mapping interface: acts["blocks.0.hook_resid_pre"], list(acts), len(acts).
    def __getitem__(self, key) -> torch.Tensor:
        """A tensor by its hook name (`blocks.3.hook_resid_post`), or as a TransformerLens cache is indexed:
        `acts["resid_post", 3]` (a short or block-relative name and a block, negative from the end),
        `acts["embed"]` for `hook_embed`."""
        name = self._full_name(key)
        try:
            return self.tensors[name]
        except KeyError:
            said = name if key == name else f"{key!r} ({name})"
            raise _NotCaptured(f"{said!r} was not captured{closest(name, self.tensors)}") from None

    def __contains__(self, key) -> bool:
        try:
            return self._full_name(key) in self.tensors
        except SpecError:
            return False

    def _full_name(self, key) -> str:
        if isinstance(key, tuple):
            ok = (
                len(key) == 2
                and isinstance(key[0], str)
                and isinstance(key[1], int)
                and not isinstance(key[1], bool)
            )
            if not ok:
                raise SpecError(
                    "index Activations with a hook name or (name, block), as acts['resid_post', 3]; "
                    f"got {key!r}"
                )
            name, block = key
            n = self.meta.n_layers
            if not -n <= block < n:
                raise SpecError(f"block {block} is out of range for a {n}-block model")
            return f"blocks.{block % n}.{SHORT_NAMES.get(name, name)}"
        if not isinstance(key, str):
            raise SpecError(f"index Activations with a hook name or (name, block), not {type(key).__name__}")
        if key not in self.tensors and f"hook_{key}" in self.tensors:
            return f"hook_{key}"  # embed, pos_embed: TransformerLens' short names of the hooks outside blocks
        return key

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return (
            f"Activations({len(self.tensors)} tensors, {len(self.tokens)} positions, "
            f"layers {format_layers(self.layers)}, model {self.meta.model!r})"
        )

    # The metadata fields users reach for most, as attributes.
    str_tokens = property(lambda self: self.meta.str_tokens)
    prompt = property(lambda self: self.meta.prompt)
    n_layers = property(lambda self: self.meta.n_layers)
    layers = property(
        lambda self: self.meta.layers, doc="Blocks short and block-relative hook names covered."
    )
    skipped_blocks = property(lambda self: self.meta.skipped_blocks)
    absent = property(lambda self: self.meta.absent, doc="Requested hooks a skipped block never computed.")
    bos = property(lambda self: self.meta.bos, doc="Whether position 0 is <|endoftext|>.")

    def families(self) -> list[str]:
        """Short (or block-relative) names of the per-block hooks captured, in first-seen order."""
        out: list[str] = []
        for name in [*self.tensors, *self.absent]:
            block, suffix = split_name(name)
            if block is not None and short_name(suffix) not in out:
                out.append(short_name(suffix))
        return out

    def stack(self, name: str) -> torch.Tensor:
        """One hook over the blocks it was captured at (`layers_of(name)`): (layer, pos, d_model) for the
        stream.

        `name` is a short or block-relative name (`resid_pre`, `attn.hook_pattern`).
        """
        suffix = SHORT_NAMES.get(name, name)
        if short_name(suffix) not in self.families():
            raise SpecError(
                f"{name!r} was not captured; captured: {', '.join(self.families()) or 'nothing per block'}"
                f"{closest(name, self.families())}"
            )
        layers = self._layers_of(suffix)
        missing = [i for i in layers if f"blocks.{i}.{suffix}" not in self.tensors]
        if missing:
            skipped = set(self.skipped_blocks)
            why = "; skipped blocks do not compute it" if skipped & set(missing) else ""
            raise SpecError(
                f"{name!r} is missing for blocks {format_layers(missing)}{why}; "
                f"index acts['blocks.N.{suffix}'] for the blocks that have it"
            )
        return torch.stack([self.tensors[f"blocks.{i}.{suffix}"] for i in layers])  # (layer, ...)

    def _layers_of(self, suffix: str) -> list[int]:
        found = {split_name(n)[0] for n in [*self.tensors, *self.absent] if split_name(n)[1] == suffix}
        return sorted(i for i in found if i is not None)

    def _positions(self, include_bos: bool) -> slice:
        # GPT-2's BOS position is an attention sink with a residual norm many times the others';
        # left in, it swamps every per-layer mean.
        drop = self.bos and not include_bos and len(self.tokens) > 1
        return slice(1 if drop else 0, None)

    def norms(self, include_bos: bool = False) -> dict[str, torch.Tensor]:
        """Mean L2 norm over positions, by layer: {family: (layer,)} for each captured (pos, d_model) hook.

        The layers are those of `layers_of(family)`; the BOS position is left out unless `include_bos`.
        """
        pos = self._positions(include_bos)
        d_model = self.meta.d_model
        out = {}
        for fam in self.families():
            suffix = SHORT_NAMES.get(fam, fam)
            if fam in ("pattern", "attn_scores") or any(
                f"blocks.{i}.{suffix}" not in self.tensors for i in self._layers_of(suffix)
            ):
                continue
            x = self.stack(fam).float()  # (layer, pos, ...)
            if x.dim() != 3 or x.shape[-1] != d_model:
                continue
            out[fam] = x[:, pos].norm(dim=-1).mean(-1)  # (layer,)
        return out

    def layers_of(self, name: str) -> list[int]:
        """Blocks `name` (short or block-relative) was requested for, as `stack` orders them."""
        return self._layers_of(SHORT_NAMES.get(name, name))

    def stream(self) -> dict[int, torch.Tensor]:
        """The residual stream by depth: {d: (pos, d_model)}, depth d entering block d (n_layers: after the
        last).

        Built from whichever of resid_pre / resid_post were captured; resid_post of block i is
        resid_pre of block i + 1, so either gives the same depth.
        """
        out: dict[int, torch.Tensor] = {}
        for name, t in self.tensors.items():
            block, suffix = split_name(name)
            if suffix == "hook_resid_pre":
                out.setdefault(block, t)
            elif suffix == "hook_resid_post":
                out.setdefault(block + 1, t)
        return dict(sorted(out.items()))

    def cosines(self, include_bos: bool = False) -> dict[int, float]:
        """{block i: mean cosine of the stream before and after block i} (consecutive layers).

        1 (up to rounding) for a skipped block. Needs the stream at depths i and i + 1 (resid_pre and/or
        resid_post of neighbouring blocks); blocks without both are left out.
        """
        pos = self._positions(include_bos)
        s = self.stream()
        out = {}
        for d in s:
            if d + 1 in s:
                a, b = s[d][pos].float(), s[d + 1][pos].float()  # (pos, d_model)
                out[d] = float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())
        return out

    def summary(self) -> dict:
        """What the capture holds, as `probes capture --json` prints it: model, tokens, tensor shapes, and
        per layer the mean L2 norm of each family and the cosine of the stream before and after the block."""
        norms = self.norms()
        cos = self.cosines()
        rows = []
        for i in sorted({i for fam in norms for i in self.layers_of(fam)} | set(cos)):
            row = {"layer": i, "skipped": i in self.skipped_blocks}
            for fam, values in norms.items():
                layers = self.layers_of(fam)
                row[fam] = float(values[layers.index(i)]) if i in layers else None
            row["cosine"] = cos.get(i)
            rows.append(row)
        return {
            "model": self.meta.model,
            "model_sha256": self.meta.model_sha256,
            "versions": self.meta.versions,
            "prompt": self.prompt,
            "tokens": self.tokens.tolist(),
            "str_tokens": self.str_tokens,
            "generated": self.meta.generated,
            "seed": self.meta.seed,
            "skipped_blocks": self.skipped_blocks,
            "absent": self.absent,
            "tensors": {k: list(v.shape) for k, v in self.items()},
            "norm_excludes_bos": self.bos and len(self.tokens) > 1,
            "families": list(norms),
            "layers": rows,
        }

    def figure(self, include_bos: bool = False):
        """Residual norm by layer and cosine of consecutive layers (a matplotlib Figure)."""
        from probes.plots.activations import activations_figure

        return activations_figure(self, include_bos=include_bos)

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write one safetensors file: a tensor per hook name, `tokens`, and the metadata.

        Atomic (`probes.io`): the file is written next to `path` under a temporary name and then
        takes the name, so an interrupted save leaves any old file intact. An existing file, or one
        that appears while saving, is refused unless `force`.
        """
        path = check_output(path, force)
        tensors = {k: v.contiguous() for k, v in self.tensors.items()}
        tensors["tokens"] = self.tokens.contiguous()
        with atomic_path(path, force) as tmp:
            capture_format.write_tensors(tensors, tmp, self.meta.to_metadata())
        return path
