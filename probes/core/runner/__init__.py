"""The runner: how a model computes, decided in one place (`runner_for`) for every study.

    runner = runner_for(model)          # FusedRunner or HookedRunner, for the model as it is now
    streams = runner.streams(ids)       # L+1 residual rows, each (batch, pos, d_model)
    logits = runner.readout(streams[3]) # row 3 read through the final norm and unembedding
    with runner.decoder() as step: ...  # KV-cached decoding steps (see probes.core.decode)

`base.py` says what a runner does; `fused.py` is GPT-2 on fused weights, `hooked.py` the bridge with
its hooks, and `products.py` the CPU product routing behind the fused runner.
"""

from __future__ import annotations

import os

from probes.core.runner.base import Runner

OFF = ("0", "false", "no", "off")


def fused_allowed(model) -> bool:
    """Whether the fused runner may run `model`: allowed (`use_fast_path`, `PROBES_FAST_PATH`), supported."""
    from probes.core.runner.fused import supported
    from probes.core.state import state_of

    if os.environ.get("PROBES_FAST_PATH", "1").strip().lower() in OFF:
        return False
    return state_of(model).fast_path and supported(model)


def runner_for(model) -> Runner:
    """The runner for `model` as it is now: fused when nothing beyond skips is attached, else hooked.

    Making a fused runner fuses the weights (once per weight version), so callers that time their
    work get the runner before starting the clock.
    """
    from probes.core.state import probes_attached

    if fused_allowed(model) and not probes_attached(model):
        from probes.core.runner.fused import FusedRunner

        return FusedRunner(model)
    from probes.core.runner.hooked import HookedRunner

    return HookedRunner(model)


__all__ = ["Runner", "fused_allowed", "runner_for"]
