"""Benchmark: the lens over a dataset against plain batched forwards, and its peak memory for 10x the texts.

Targets (issue 15): the lens over N texts of 128 tokens takes at most 5x the time of plain batched
forwards (`model(ids)`, logits for every position) over the same windows and batches; its peak
memory for 10N texts is within 1.2x that for N.

    OMP_NUM_THREADS=1 python benchmarks/bench_dataset_lens.py [--model M] [--texts 50] [--scale 10]

Texts are random token ids decoded to strings (seeded), so every text is about `--tokens` tokens.
Timings: the best of `--repeats` runs of each, alternated, in this process. Memory: peak RSS
(VmHWM) of a child process per dataset size, which loads the model, warms the lens up on a few
texts, resets the high-water mark to its current RSS, then runs the lens; printed as the whole
process's peak and as what the run added above the loaded model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import rss


def make_texts(model, n: int, tokens: int, seed: int = 0) -> list[str]:
    import torch

    g = torch.Generator().manual_seed(seed)
    vocab = min(model.cfg.d_vocab, len(model.tokenizer))
    ids = torch.randint(0, vocab, (n, tokens), generator=g)
    eos = model.tokenizer.eos_token_id
    return [model.tokenizer.decode([i for i in row.tolist() if i != eos]) for row in ids]


def plain_forwards(model, texts, max_tokens: int, max_rows: int) -> int:
    """Every window of `texts` through the whole model in the lens's batches; returns the tokens fed."""
    import torch

    from probes.core.dataset import Dataset
    from probes.core.windows import batches, windows
    from probes.studies.lens.dataset import _by_length

    fed = 0
    with torch.no_grad():
        items = _by_length(windows(model, Dataset(texts)), 8 * max_rows)
        for batch in batches(model, items, max_tokens=max_tokens, max_rows=max_rows):
            model(batch.ids)
            fed += int(batch.lengths.sum())
    return fed


def _child(args) -> int:
    """Peak RSS of one lens run over `--memory-texts` texts, as JSON on stdout."""
    import probes

    model = probes.load(args.model, device=args.device)
    probes.lens_over(model, make_texts(model, 4, args.tokens, seed=1))  # warm-up: lazy state is not the run's
    texts = make_texts(model, args.memory_texts, args.tokens)
    base = rss("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    probes.lens_over(model, texts)
    print(json.dumps({"peak_mib": rss("VmHWM") / 2**20, "added_mib": (rss("VmHWM") - base) / 2**20}))
    return 0


def peak(args, n: int) -> dict:
    # glibc keeps freed blocks below its growing mmap threshold in the heap; a fixed threshold
    # returns large blocks to the OS on free, so the high-water mark is the run's own.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [
        sys.executable,
        __file__,
        "--memory-texts",
        str(n),
        "--tokens",
        str(args.tokens),
        "--device",
        args.device,
    ]
    cmd += ["--model", args.model] if args.model else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="a model probes.load accepts (default: the bundled one)"
    )
    parser.add_argument("--texts", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument(
        "--scale", type=int, default=10, help="the memory run's larger dataset is this many times --texts"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-texts", type=int, help=argparse.SUPPRESS)  # internal: the memory child
    args = parser.parse_args(argv)
    if args.memory_texts:
        return _child(args)

    import torch

    import probes

    model = probes.load(args.model, device=args.device)
    texts = make_texts(model, args.texts, args.tokens)
    probes.lens_over(model, texts[:4])  # warm-up
    plain_forwards(model, texts[:4], 4096, 64)
    times = {"forward": [], "lens": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fed = plain_forwards(model, texts, 4096, 64)
        times["forward"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lens = probes.lens_over(model, texts)
        times["lens"].append(time.perf_counter() - t0)
    assert lens.n_positions == fed, (lens.n_positions, fed)
    fwd, lz = min(times["forward"]), min(times["lens"])
    print(
        f"model {lens.model_name}: {model.cfg.n_layers} blocks, d_model {model.cfg.d_model}, vocab "
        f"{model.cfg.d_vocab}; device {args.device}, torch threads {torch.get_num_threads()}"
    )
    print(f"{len(texts)} texts, {lens.n_windows} windows, {fed:,} positions (BOS included)")
    print(f"plain batched forwards  {fwd:8.2f} s  ({fed / fwd:,.0f} tokens/s)")
    print(f"lens over the texts     {lz:8.2f} s  ({fed / lz:,.0f} tokens/s)")
    print(f"time ratio lens / forwards: {lz / fwd:.2f}x (target <= 5x)")
    if args.device == "cpu" and sys.platform.startswith("linux"):
        small, big = peak(args, args.texts), peak(args, args.scale * args.texts)
        print(
            f"peak RSS, {args.texts} texts: {small['peak_mib']:.0f} MiB ({small['added_mib']:.1f} MiB above "
            "the loaded model)"
        )
        print(
            f"peak RSS, {args.scale * args.texts} texts: {big['peak_mib']:.0f} MiB ({big['added_mib']:.1f} "
            "MiB above the loaded model)"
        )
        print(
            f"memory ratio {args.scale}x texts: {big['peak_mib'] / small['peak_mib']:.3f}x peak RSS (target "
            f"<= 1.2x), {big['added_mib'] / max(small['added_mib'], 1e-9):.2f}x of the added memory"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
