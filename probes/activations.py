"""Activations: captured per-layer tensors with their tokens and metadata, saved to and read from safetensors.

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

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Iterable, Iterator

import torch

from probes.errors import ProbesError, SpecError, closest
from probes.io import atomic_path, check_output
from probes.layers import format_layers

FORMAT = "probes.activations/1"

# Short name -> hook name inside a block (`blocks.{i}.` + this).
SHORT_NAMES = {
    "resid_pre": "hook_resid_pre",
    "resid_mid": "hook_resid_mid",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "pattern": "attn.hook_pattern",
    "attn_scores": "attn.hook_attn_scores",
    "q": "attn.hook_q",
    "k": "attn.hook_k",
    "v": "attn.hook_v",
    "z": "attn.hook_z",
    "mlp_pre": "mlp.hook_pre",
    "mlp_post": "mlp.hook_post",
    "ln1_normalized": "ln1.hook_normalized",
    "ln2_normalized": "ln2.hook_normalized",
}
_LONG_TO_SHORT = {v: k for k, v in SHORT_NAMES.items()}

# Hooks whose tensors are (heads, query, key): a generation step adds query rows with a longer key
# axis, padded to the final length with what the causal mask puts there.
_KEYED_PAD = {"attn.hook_pattern": 0.0, "attn.hook_attn_scores": float("-inf")}

# What a skipped block's hooks hold, since only its input and output hooks fire.

# Keyword arguments of `probes.generate` that `capture(..., generate=N)` passes through.
GENERATE_OPTIONS = ("temperature", "top_k", "top_p", "greedy", "seed", "stop_at_eos")

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def split_name(name: str) -> tuple[int | None, str]:
    """(block index, name inside the block) of a full hook name; (None, name) for model-level hooks."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), m.group(2)) if m else (None, name)


def short_name(suffix: str) -> str:
    """`resid_pre` for `hook_resid_pre`, the block-relative name itself when it has no short name."""
    return _LONG_TO_SHORT.get(suffix, suffix)


def resolve_hooks(model, hooks: Iterable[str] | str, layers: list[int]) -> list[str]:
    """Full hook names for `hooks` (short, block-relative or full names), in a stable order.

    Short and block-relative names expand to each block in `layers`; full names stay as given.
    An unknown name raises SpecError listing the short names and the closest matches.
    """
    if isinstance(hooks, str):
        hooks = [h for h in hooks.split(",")]
    names = [h.strip() for h in hooks]
    if not names or any(not h for h in names):
        raise SpecError(f"empty hook name in {list(hooks)!r}; use short names like {', '.join(list(SHORT_NAMES)[:6])}")
    block0 = {n.removeprefix("blocks.0.") for n in model.hook_dict if n.startswith("blocks.0.")}
    out: list[str] = []
    for name in names:
        if name in model.hook_dict:
            found = [name]
        elif name in SHORT_NAMES or name in block0:
            suffix = SHORT_NAMES.get(name, name)
            found = [f"blocks.{i}.{suffix}" for i in layers]
        else:
            choices = [*SHORT_NAMES, *sorted(block0), *model.hook_dict]
            raise SpecError(
                f"unknown hook {name!r}{closest(name, choices)} (short names: {', '.join(SHORT_NAMES)}; "
                "or a hook point such as attn.hook_pattern or blocks.0.hook_resid_pre, see `probes info`)"
            )
        out.extend(f for f in found if f not in out)
    return out


class _NotCaptured(SpecError, KeyError):
    """A ProbesError for users, a KeyError for Mapping's `in` and `.get`."""

    __str__ = Exception.__str__


class Activations(Mapping):
    """Recorded hook tensors of one sequence: a mapping hook name -> tensor, plus tokens and metadata.

    `tokens` (pos,) int64; `token_strings` one string a position; `meta` the file's metadata
    (strings only; JSON inside for lists and dicts).
    """

    def __init__(self, tensors: dict[str, torch.Tensor], tokens: torch.Tensor, meta: dict[str, str]):
        # One canonical order, so a loaded file (safetensors sorts names as text) iterates as captured.
        self.tensors = {k: tensors[k] for k in sorted(tensors, key=_order)}
        self.tokens = tokens
        self.meta = dict(meta)

    # Mapping interface: acts["blocks.0.hook_resid_pre"], list(acts), len(acts).
    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise _NotCaptured(f"{name!r} was not captured{closest(name, self.tensors)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __repr__(self) -> str:
        return (f"Activations({len(self.tensors)} tensors, {len(self.tokens)} positions, "
                f"layers {format_layers(self.layers)}, model {self.meta.get('model')!r})")

    # Metadata, decoded.
    def _json(self, key: str, default):
        return json.loads(self.meta[key]) if key in self.meta else default

    @property
    def token_strings(self) -> list[str]:
        return self._json("token_strings", [])

    @property
    def prompt(self) -> str:
        return self.meta.get("prompt", "")

    @property
    def n_layers(self) -> int:
        return int(self.meta["n_layers"])

    @property
    def layers(self) -> list[int]:
        """Blocks the capture covered (for short and block-relative hook names)."""
        return self._json("layers", [])

    @property
    def skipped_blocks(self) -> list[int]:
        return self._json("skipped_blocks", [])

    @property
    def absent(self) -> list[str]:
        """Requested hooks a skipped block never computed (not in the file)."""
        return self._json("absent", [])

    @property
    def bos(self) -> bool:
        """Whether position 0 is <|endoftext|>."""
        return self.meta.get("bos") == "true"

    def families(self) -> list[str]:
        """Short (or block-relative) names of the per-block hooks captured, in first-seen order."""
        out: list[str] = []
        for name in [*self.tensors, *self.absent]:
            block, suffix = split_name(name)
            if block is not None and short_name(suffix) not in out:
                out.append(short_name(suffix))
        return out

    def stack(self, name: str) -> torch.Tensor:
        """One hook over the blocks it was captured at (`layers_of(name)`): (layer, pos, d_model) for the stream.

        `name` is a short or block-relative name (`resid_pre`, `attn.hook_pattern`).
        """
        suffix = SHORT_NAMES.get(name, name)
        if short_name(suffix) not in self.families():
            raise SpecError(f"{name!r} was not captured; captured: {', '.join(self.families()) or 'nothing per block'}"
                            f"{closest(name, self.families())}")
        layers = self._layers_of(suffix)
        missing = [i for i in layers if f"blocks.{i}.{suffix}" not in self.tensors]
        if missing:
            skipped = set(self.skipped_blocks)
            why = "; skipped blocks do not compute it" if skipped & set(missing) else ""
            raise SpecError(f"{name!r} is missing for blocks {format_layers(missing)}{why}; "
                            f"index acts['blocks.N.{suffix}'] for the blocks that have it")
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
        d_model = int(self.meta["d_model"])
        out = {}
        for fam in self.families():
            suffix = SHORT_NAMES.get(fam, fam)
            if fam in ("pattern", "attn_scores") or any(f"blocks.{i}.{suffix}" not in self.tensors for i in self._layers_of(suffix)):
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
        """The residual stream by depth: {d: (pos, d_model)}, depth d entering block d (n_layers: after the last).

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

    def figure(self, include_bos: bool = False):
        """Residual norm by layer and cosine of consecutive layers (a matplotlib Figure)."""
        from probes.plots.activations import activations_figure

        return activations_figure(self, include_bos=include_bos)

    def save(self, path: str | os.PathLike, force: bool = False) -> Path:
        """Write one safetensors file: a tensor per hook name, `tokens`, and the metadata.

        Atomic: the file is written next to `path` under a temporary name and renamed over it, so
        an interrupted save leaves any old file intact. An existing file is refused unless `force`.
        """
        path = Path(path)
        check_output(path, force)
        tensors = {k: v.contiguous() for k, v in self.tensors.items()}
        tensors["tokens"] = self.tokens.contiguous()
        with atomic_path(path) as tmp:
            _write(tensors, tmp, dict(self.meta))
        return path


def _order(name: str) -> tuple:
    """Sort key: embeddings, then blocks by index (short-named hooks in SHORT_NAMES order), then the final norm."""
    block, suffix = split_name(name)
    if block is None:
        block = float("inf") if name.startswith(("ln_final", "unembed", "hook_unembed")) else -1
    ranks = list(SHORT_NAMES.values())
    return (block, ranks.index(suffix) if suffix in ranks else len(ranks), suffix)


def _write(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, path, metadata=metadata)


def load_activations(path: str | os.PathLike) -> Activations:
    """Read a file written by `Activations.save`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ProbesError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:
        raise ProbesError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]})") from None
    if meta.get("format") != FORMAT or "tokens" not in tensors:
        raise ProbesError(f"{path}: a safetensors file, but not one written by probes capture (format {meta.get('format')!r})")
    tokens = tensors.pop("tokens")
    return Activations(tensors, tokens, meta)
