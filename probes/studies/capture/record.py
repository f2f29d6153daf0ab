"""Recording hook tensors: which hook fills each requested name (skipped blocks too), and the recorder.

One-prompt capture (`probes.studies.capture.prompt`) and dataset capture (`probes.studies.capture.dataset`)
attach `recorder.hook(key)` at each `(hook, key)` of `hook_plan(...)` and read `recorder.store`.
"""

from __future__ import annotations

import torch

from probes.core.hooks import KEYED_HOOKS, split_name

# Hooks whose tensors are (heads, query, key): a generation step adds query rows with a longer key
# axis, padded to the final length with what the causal mask puts there.
KEYED_PAD = dict(zip(KEYED_HOOKS, (0.0, float("-inf"))))  # attn.hook_pattern, attn.hook_attn_scores
# What a skipped block's hooks hold, since only its input and output hooks fire.
SKIPPED_FIRES = ("hook_resid_pre", "hook_resid_post", "hook_in", "hook_out")
SKIPPED_FROM = {"hook_resid_mid": "hook_resid_pre"}  # recorded from another hook of the block
SKIPPED_ZERO = ("hook_attn_out", "hook_mlp_out")  # the block adds nothing


class Recorder:
    """Hooks that append the new positions of each forward call (batch axis dropped) to `store`.

    With `mask` set (a padded batch's (batch, pos) real positions) each hook keeps instead the
    masked rows, flattened to (rows, ...), cast to `dtype` (None: as computed): a dataset capture.
    """

    def __init__(self, dtype: torch.dtype | None = None):
        self.store: dict[str, list[torch.Tensor]] = {}
        self.fresh = 0
        self.mask: torch.Tensor | None = None
        self.dtype = dtype

    def on_forward(self, start: int, fresh: int) -> None:
        self.fresh = fresh

    def hook(self, key: str):
        keyed = split_name(key)[1] in KEYED_PAD

        def record(t, hook):
            if self.mask is not None:
                x = t[self.mask]  # (rows, ...): the batch's real positions, row by row
            else:
                x = t[0]
                x = x[:, -self.fresh :] if keyed else x[-self.fresh :]  # (heads, new, key) or (new, ...)
            self.store.setdefault(key, []).append(x.detach().to("cpu", dtype=self.dtype, copy=True))

        return record


def hook_plan(names: list[str], skipped: set[int]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """([(hook to attach, name to store under)], names to fill with zeros, names absent) for skipped
    blocks."""
    plan, zeros, absent = [], [], []
    for name in names:
        block, suffix = split_name(name)
        if block not in skipped or suffix in SKIPPED_FIRES:
            plan.append((name, name))
        elif suffix in SKIPPED_FROM:
            plan.append((f"blocks.{block}.{SKIPPED_FROM[suffix]}", name))
        elif suffix in SKIPPED_ZERO:
            zeros.append(name)
        else:
            absent.append(name)
    return plan, zeros, absent
