"""Hooks: hook names (short, block-relative, full; unknown names raise), attach temporarily, remove exactly
what was added, count."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from probes.errors import SpecError, closest

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

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")

# The hook points TransformerLens' bridge gives a GPT-2 (the only model type probes loads), so a name
# is checked against the checkpoint's config before the model loads; tests/test_activations.py keeps these
# equal to a loaded model's hook_dict.
BLOCK_HOOKS = (
    *(f"hook_{n}" for n in ("in", "out", "resid_pre", "resid_mid", "resid_post", "attn_in", "attn_out")),
    *(f"hook_{n}" for n in ("mlp_in", "mlp_out", "q_input", "k_input", "v_input")),
    *(f"attn.hook_{n}" for n in ("in", "out", "attn_in", "attn_scores", "pattern", "hidden_states")),
    *(f"attn.hook_{n}" for n in ("q", "k", "v", "z", "q_input", "k_input", "v_input", "result")),
    *(f"attn.{p}.hook_{io}" for p in ("q", "k", "v", "o", "qkv") for io in ("in", "out")),
    *(f"{ln}.hook_{n}" for ln in ("ln1", "ln2") for n in ("in", "out", "normalized", "scale")),
    *(f"mlp.hook_{n}" for n in ("in", "out", "pre", "post")),
    *(f"mlp.{p}.hook_{io}" for p in ("in", "out") for io in ("in", "out")),
)
MODEL_HOOKS = (
    "hook_embed",
    "hook_pos_embed",
    "hook_unembed",
    *(f"{m}.hook_{io}" for m in ("embed", "pos_embed", "unembed", "ln_final") for io in ("in", "out")),
    "ln_final.hook_normalized",
    "ln_final.hook_scale",
)


def row_hooks(n_layers: int) -> list[str]:
    """The hook names of the residual stream's L+1 rows, input first: each block's resid_pre, then the
    last block's resid_post (the rows every lens and runner reads)."""
    return [f"blocks.{i}.hook_resid_pre" for i in range(n_layers)] + [
        f"blocks.{n_layers - 1}.hook_resid_post"
    ]


def split_name(name: str) -> tuple[int | None, str]:
    """(block index, name inside the block) of a full hook name; (None, name) for model-level hooks."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), m.group(2)) if m else (None, name)


def short_name(suffix: str) -> str:
    """`resid_pre` for `hook_resid_pre`, the block-relative name itself when it has no short name."""
    return _LONG_TO_SHORT.get(suffix, suffix)


# Hooks whose tensors are (heads, query, key): the key axis grows with the position, so they do not
# fit (rows, ...) tensors of a dataset capture.
KEYED_HOOKS = ("attn.hook_pattern", "attn.hook_attn_scores")


def check_row_hooks(names: Iterable[str]) -> None:
    """Refuse, without a model, any hook among `names` (short, block-relative or full) that has a key axis."""
    for name in names:
        if SHORT_NAMES.get(name, split_name(name)[1]) in KEYED_HOOKS:
            raise SpecError(
                f"{name}: attention patterns and scores have a key axis that grows with the position, "
                "so they do not fit rows; capture them one prompt at a time"
            )


def check_hook_names(hooks: Iterable[str] | str, n_layers: int | None = None) -> list[str]:
    """The requested names, with every one that cannot be a hook name of a GPT-2 refused now, without a
    model.

    Short names, block-relative names (`attn.hook_pattern`) and model-level ones (`hook_embed`) are
    checked against the bridge's names; a full name (`blocks.3.hook_resid_pre`) also against
    `n_layers`, the checkpoint's number of blocks, when it is given (the CLI reads it from
    config.json).
    """
    names = [h.strip() for h in (hooks.split(",") if isinstance(hooks, str) else hooks)]
    if not names or any(not h for h in names):
        raise SpecError(
            f"empty hook name in {list(names)!r}; use short names like {', '.join(list(SHORT_NAMES)[:6])}"
        )
    for name in names:
        block, suffix = split_name(name)
        if block is not None:
            check_block(name, block, n_layers)
            if suffix in BLOCK_HOOKS and name == f"blocks.{block}.{suffix}":
                continue
            choices = [f"blocks.{block}.{h}" for h in BLOCK_HOOKS]
        elif name in SHORT_NAMES or name in BLOCK_HOOKS or name in MODEL_HOOKS:
            continue
        else:
            choices = [*SHORT_NAMES, *BLOCK_HOOKS, *MODEL_HOOKS]
        raise SpecError(unknown_hook(name, choices))
    return names


def check_block(name: str, block: int, n_layers: int | None) -> None:
    """Refuse the full hook name `name` of block `block` when the model has no such block."""
    if n_layers is not None and not 0 <= block < n_layers:
        raise SpecError(f"hook {name!r}: the model has {n_layers} blocks ({_block_range(n_layers)})")


def _block_range(n_layers: int) -> str:
    return "0" if n_layers == 1 else f"0-{n_layers - 1}"


def unknown_hook(name: str, choices) -> str:
    return (
        f"unknown hook {name!r}{closest(name, choices)} (short names: {', '.join(SHORT_NAMES)}; "
        "or a hook point such as attn.hook_pattern or blocks.0.hook_resid_pre, see `probes info`)"
    )


def resolve_hooks(model, hooks: Iterable[str] | str, layers: list[int]) -> list[str]:
    """Full hook names for `hooks` (short, block-relative or full names), in a stable order.

    Short and block-relative names expand to each block in `layers`; full names stay as given.
    An unknown name raises SpecError listing the short names and the closest matches.
    """
    if isinstance(hooks, str):
        hooks = [h for h in hooks.split(",")]
    names = [h.strip() for h in hooks]
    if not names or any(not h for h in names):
        raise SpecError(
            f"empty hook name in {list(hooks)!r}; use short names like {', '.join(list(SHORT_NAMES)[:6])}"
        )
    block0 = {n.removeprefix("blocks.0.") for n in model.hook_dict if n.startswith("blocks.0.")}
    out: list[str] = []
    for name in names:
        if name in model.hook_dict:
            found = [name]
        elif name in SHORT_NAMES or name in block0:
            suffix = SHORT_NAMES.get(name, name)
            found = [f"blocks.{i}.{suffix}" for i in layers]
        else:
            block = split_name(name)[0]
            if block is not None:
                check_block(name, block, model.cfg.n_layers)
            choices = [*SHORT_NAMES, *sorted(block0), *model.hook_dict]
            raise SpecError(unknown_hook(name, choices))
        out.extend(f for f in found if f not in out)
    return out


def hook_point(model, name: str):
    """The HookPoint called `name`; an unknown name raises instead of being ignored (TL 4.3 ignores it)."""
    point = model.hook_dict.get(name)
    if point is None:
        raise SpecError(f"unknown hook point {name!r}{closest(name, model.hook_dict)}")
    return point


@contextmanager
def attached(model, hooks: Iterable[tuple[str, Callable]]) -> Iterator[None]:
    """Attach forward hooks `(name, fn(tensor, hook))` for the body of the `with`, then remove them.

    Only the handles added here are removed, so nested contexts and hooks the caller attached
    beforehand are left alone, also when the body raises.
    """
    added = []
    try:
        for name, fn in hooks:
            point = hook_point(model, name)
            # Through an alias (hook_resid_pre -> hook_in) the hook still sees the name it asked for.
            aliases = [name] if point.name != name else None
            added.append((point, point.add_hook(fn, dir="fwd", alias_names=aliases)))
        yield
    finally:
        for point, handle in reversed(added):
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)


def hook_keys(model) -> frozenset:
    """An identity for every hook on every module, plus each instance-level `forward` override."""
    keys = set()
    for name, m in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            keys.update((name, kind, k) for k in getattr(m, kind, {}))
        if "forward" in m.__dict__:
            keys.add((name, "forward", id(m.__dict__["forward"])))
    return frozenset(keys)
