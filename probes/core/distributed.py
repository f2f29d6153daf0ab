"""Ranks: the same study in several processes under `torchrun`, each taking its share; results gathered.

    torchrun --standalone --nproc-per-node 2 -m probes lens --dataset FILE:texts.txt
    # or, in a script run by torchrun:
    model = probes.load()                      # joins the process group: gloo on the CPU, nccl on CUDA
    lens = probes.lens_over(model, "FILE:texts.txt")   # each rank reads its share; every rank gets the result

`torchrun` (not a launcher of ours) starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT. `start()` (called by `probes.load`) joins the process group those variables
describe, unless the caller has joined one already; without them (or with one process) nothing
changes: rank 0 of 1. The studies that split work ask `rank()` / `size()`, take their share with
`mine()`, and combine with `all_sum()` / `gather()`; every collective that fails because a rank has
gone is one `RankLost` line instead of a hang (a collective waits at most `timeout()` seconds,
`PROBES_DIST_TIMEOUT`, 600 by default). Only rank 0 prints and writes what the CLI shows
(`probes.cli`). The module imports torch only when a process group is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from probes.errors import ProbesError

T = TypeVar("T")

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankLost(ProbesError):
    """Another rank stopped (it failed, was killed, or timed out) while this one waited for it."""


class Agreed(ProbesError):
    """An error every rank raises alike (from the same inputs, or rank 0's word): rank 0 alone prints it."""


def own(error: ProbesError) -> ProbesError:
    """Mark `error` as this rank's own (a shard this rank failed to write): every rank prints its own."""
    error.rank_specific = True
    return error


def launched() -> bool:
    """Whether torchrun (or anything that sets its variables) started this process as one of several."""
    if not all(v in os.environ for v in TORCHRUN_VARS):
        return False
    try:
        return int(os.environ["WORLD_SIZE"]) > 1
    except ValueError:
        return False


def timeout() -> float:
    """Seconds a collective waits for the other ranks before this rank gives up (PROBES_DIST_TIMEOUT)."""
    raw = os.environ.get("PROBES_DIST_TIMEOUT", "600")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ProbesError(f"PROBES_DIST_TIMEOUT={raw!r}: give a number of seconds > 0")
    return value


def _dist():
    """torch.distributed if a process group is up, else None."""
    if "torch" not in sys.modules:  # no torch loaded: no process group can be up
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def active() -> bool:
    """Whether this process is one of several ranks of a process group."""
    dist = _dist()
    return dist is not None and dist.get_world_size() > 1


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist is not None else 0


def size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist is not None else 1


def is_main() -> bool:
    """Rank 0, the one that prints and writes (also when there are no ranks)."""
    return rank() == 0


def device_for(device: str | None) -> str | None:
    """The device this rank computes on: `cuda` (or nothing, when torchrun started ranks on a CUDA machine
    that was asked for cuda) becomes `cuda:LOCAL_RANK`; anything else is kept."""
    if launched() and device == "cuda":
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def start(device: str | None = None) -> None:
    """Join the process group torchrun describes (gloo on the CPU, nccl when `device` is CUDA); no-op without
    torchrun or when a group is up already."""
    if not launched() or _dist() is not None:
        return
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    cuda = device is not None and str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    try:
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout()))
    except Exception as e:  # a rendezvous that fails is one line too
        who = os.environ.get("RANK")
        raise RankLost(f"rank {who}: cannot join the other ranks: {_first_line(e)}") from None


def stop() -> None:
    """Leave the process group (the CLI, once its command is done); no-op without one."""
    dist = _dist()
    if dist is not None:
        dist.destroy_process_group()


def mine(items: Iterable[T]) -> Iterator[T]:
    """This rank's share of `items`: those whose position in the sequence is this rank modulo the ranks."""
    r, n = rank(), size()
    for i, item in enumerate(items):
        if i % n == r:
            yield item


def _call(what: str, fn, *args):
    try:
        return fn(*args)
    except Exception as e:
        raise RankLost(
            f"rank {rank()}: another rank stopped during {what} ({_first_line(e)}); "
            "torchrun's report names it"
        ) from None


def _comm_device():
    import torch

    dist = _dist()
    if dist is not None and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(values, what: str = "combining the ranks' sums"):
    """The element-wise sum over ranks of `values` (a numpy array, float64 or int64); `values` itself with
    one rank."""
    import numpy as np

    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return values
    import torch

    array = np.ascontiguousarray(values)
    t = torch.from_numpy(array.copy()).to(_comm_device())
    _call(what, dist.all_reduce, t)
    return t.cpu().numpy().astype(array.dtype, copy=False)


def all_max(value: int, what: str = "agreeing on a size") -> int:
    """The largest of each rank's `value`."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return value
    import torch

    t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    _call(what, dist.all_reduce, t, dist.ReduceOp.MAX)
    return int(t.item())


def gather(obj, what: str = "gathering the ranks' results") -> list:
    """Every rank's `obj` (picklable), in rank order, on every rank; [obj] with one rank."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    _call(what, dist.all_gather_object, out, obj)
    return out


def from_main(obj, what: str = "hearing from rank 0"):
    """Rank 0's `obj` on every rank (others pass anything, None)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return obj
    box = [obj]
    _call(what, dist.broadcast_object_list, box, 0)
    return box[0]


def barrier(what: str = "waiting for the other ranks") -> None:
    dist = _dist()
    if dist is not None and dist.get_world_size() > 1:
        _call(what, dist.barrier)


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
