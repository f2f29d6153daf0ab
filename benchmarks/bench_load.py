"""Model load time, side by side in one run: `probes.load("gpt2")` against what it is made of.

Builds a GPT-2-small-shaped checkpoint (12 blocks, d_model 768, GPT-2's 50,257-token vocabulary,
random weights, fp32 safetensors) laid out as a Hugging Face cache, then times, each in a fresh
process (imports excluded, timed apart) and interleaved:
  - transformers `GPT2LMHeadModel.from_pretrained` (the weights alone);
  - TransformerLens: `TransformerBridge.boot_transformers` + `enable_compatibility_mode()`;
  - `probes.load("gpt2")` (checks + the two above + the KV-cache adapter + a first forward).

    python benchmarks/bench_load.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_load_times

VARIANTS = ("transformers from_pretrained", "TransformerLens boot + compatibility mode", "probes.load")


def child(which: str) -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformer_lens.model_bridge  # noqa: F401
    import transformers

    import probes  # noqa: F401

    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    if which == VARIANTS[0]:
        transformers.GPT2LMHeadModel.from_pretrained("gpt2")
    elif which == VARIANTS[1]:
        from transformer_lens.model_bridge import TransformerBridge

        TransformerBridge.boot_transformers("gpt2").enable_compatibility_mode(disable_warnings=True)
    else:
        probes.load("gpt2")
    print(json.dumps({"imports": imports, "load": time.perf_counter() - t0}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import build_hub_cache

    with tempfile.TemporaryDirectory() as home:
        build_hub_cache(home, "gpt2", n_layer=12, n_embd=768, n_head=12, n_positions=1024)
        env = {
            **os.environ,
            "HF_HOME": home,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": str(args.threads),
            "TRANSFORMERS_VERBOSITY": "error",
        }
        times, imports = fresh_load_times(
            lambda v: [sys.executable, __file__, "--child", v], VARIANTS, args.repeats, env
        )
    ref = statistics.median(times[VARIANTS[0]])
    print(
        f"GPT-2-small-shaped checkpoint from a hub cache, {args.threads} threads, median of {args.repeats} "
        f"fresh processes after one warm-up round (imports apart: median {statistics.median(imports):.1f} s)"
    )
    for v in VARIANTS:
        t = times[v]
        print(
            f"  {v:44s} {statistics.median(t):6.2f} s  (range {min(t):.2f}-{max(t):.2f})  "
            f"{statistics.median(t) / ref:5.2f}x from_pretrained"
        )
    print(
        "probes.load / TransformerLens boot: "
        f"{statistics.median(times[VARIANTS[2]]) / statistics.median(times[VARIANTS[1]]):.2f}x"
    )


if __name__ == "__main__":
    main()
