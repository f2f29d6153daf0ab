"""Model state: what probes knows about a model (its source, its own hooks, skipped blocks, fused weights), in
one record on the model.

    state_of(model).source       # where the weights came from (probes.load sets it)
    state_of(model).skipped      # {block: the skip context that owns it}
    probes_attached(model)       # True when anything beyond the model's own hooks and our skips is attached

The record lives in the bridge's `__dict__` (not a side table), so it dies with the model and a
copy of the model cannot share it by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probes.core.source import ModelSource, external_source

_ATTR = "_probes_state"


@dataclass
class ModelState:
    """Everything probes has recorded about one model.

    `baseline` is the set of hooks the model carried when it was loaded (TransformerLens' own
    capture hooks, our KV-cache adapter): anything beyond it means a probe or a user hook is
    attached. None for a bridge built outside `probes.load`, whose own hooks we cannot tell apart.
    `fused` caches the fast path's weights as (parameter signature, weights); `cache_adapters`
    holds the KV-cache fix on each block's attention (`probes.core.kvcache`).
    """

    source: ModelSource
    baseline: frozenset | None = None
    skipped: dict[int, Any] = field(default_factory=dict)
    fused: tuple | None = None
    cache_adapters: dict[int, Any] = field(default_factory=dict)  # block -> handle of the KV-cache adapter
    fast_path: bool = True  # False: always decode through the hooks (see probes.core.runner.fused)


def state_of(model) -> ModelState:
    """The model's record, created on first use (for a bridge made elsewhere: an 'external' source)."""
    st = model.__dict__.get(_ATTR)
    if st is None:
        st = ModelState(source=external_source(model))
        model.__dict__[_ATTR] = st
    return st


def use_fast_path(model, enabled: bool = True) -> None:
    """Allow (default) or forbid the fused hook-free decoder for `model`.

    Forbid it after editing weights through `.data` (which the fast path cannot see; see
    `probes.core.runner.fused`), or to time the hooked path. `PROBES_FAST_PATH=0` forbids it everywhere.
    """
    state_of(model).fast_path = bool(enabled)


def hook_count(model) -> int:
    """How many hooks (and `forward` overrides, i.e. skipped blocks) you and probes have attached now.

    The hooks the model carried when `probes.load` returned it (the bridge's own capture hooks and
    the KV-cache adapter: 18 on the bundled 6-block model) are its baseline and not counted, so a freshly
    loaded model has 0. A bridge made elsewhere has no baseline: every hook on it counts.
    """
    from probes.core.hooks import hook_keys

    baseline = state_of(model).baseline or frozenset()
    return len(hook_keys(model) - baseline)


def probes_attached(model) -> bool:
    """True when a hook beyond the model's baseline is attached, or a global module hook is set.

    Skipped blocks are ours and do not count. A model without a baseline (not from
    `probes.load`) always counts as hooked: we cannot tell its own hooks from a caller's.
    """
    import torch.nn.modules.module as mm

    from probes.core.hooks import hook_keys

    st = state_of(model)
    if st.baseline is None:
        return True
    if any(
        getattr(mm, g, None)
        for g in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    ):
        return True  # torch.nn.modules.module.register_module_forward_hook and friends
    skips = {f"blocks.{i}" for i in st.skipped}
    extra = {k for k in hook_keys(model) - st.baseline if not (k[1] == "forward" and k[0] in skips)}
    return bool(extra)
