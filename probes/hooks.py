"""Temporary hooks: attach by name (unknown names raise), remove exactly what was added, count."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from probes.errors import SpecError, closest


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


def hook_count(model) -> int:
    """All forward/pre hooks on every module, plus forward overrides (skipped blocks)."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += "forward" in m.__dict__
    return n
