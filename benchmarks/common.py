"""What the benchmark scripts share: the GPT-2-small-shaped checkpoint, interleaved timing, peak RSS.

Checkpoints come from the tests' builder (`tests/conftest.py: build_checkpoint`: random weights,
random LayerNorm parameters), so benchmarks and tests build models one way.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def gpt2_small(path, *, gpt2_vocab: bool = False, vocab: int | None = None):
    """A random checkpoint of GPT-2 small's shape (12 blocks, d_model 768, 1,024 positions) at `path`.

    The bundled model's tokenizer (8,192 tokens), or GPT-2's real one (50,257) with `gpt2_vocab`;
    `vocab` pads the embedding to that many rows (the tokenizer stays).
    """
    from conftest import build_checkpoint, gpt2_tokenizer

    return build_checkpoint(
        path,
        n_layer=12,
        n_embd=768,
        n_head=12,
        n_positions=1024,
        tokenizer=gpt2_tokenizer() if gpt2_vocab else None,
        vocab_size=vocab,
    )


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(runs: dict, repeats: int, device="cpu") -> tuple[dict, dict]:
    """({name: the warm-up's result}, {name: [seconds of each repeat]}), the runs taking turns.

    Each run is called once to warm up, then `repeats` rounds call each in turn, so a drift in the
    machine's speed hits every run alike.
    """
    outputs = {k: f() for k, f in runs.items()}
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, f in runs.items():
            _sync(device)
            t0 = time.perf_counter()
            f()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return outputs, times


def timed(fn, device, repeats: int) -> float:
    """Median seconds of `repeats` calls after a warm-up."""
    return statistics.median(interleaved({"run": fn}, repeats, device)[1]["run"])


def rss(field: str) -> int:
    """This process's VmRSS or VmHWM (peak) in bytes, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(field)


def fresh_load_times(command, variants, repeats: int, env: dict) -> tuple[dict, list]:
    """({variant: [load seconds]}, [import seconds]): `command(variant)` run as a fresh process per load,
    the variants taking turns; it prints JSON with `load` and `imports` last. The first round warms the
    page cache and is dropped."""
    import json
    import subprocess

    times = {v: [] for v in variants}
    imports = []
    for _ in range(repeats + 1):
        for v in variants:
            out = subprocess.run(command(v), env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{v} failed:\n{out.stderr[-2000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            times[v].append(r["load"])
            imports.append(r["imports"])
    return {v: t[1:] for v, t in times.items()}, imports
