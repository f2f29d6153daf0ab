"""Benchmark: capture over a dataset, peak memory for N vs 10N texts (target <= 1.2x) and throughput vs plain
work (>= 0.5x).

Texts are 128-token pieces of the bundled model's held-out Shakespeare, written as JSON Lines. Each
measurement runs in its own child process on the bundled model (6 blocks, d_model 192):

    capture    `probes.capture(model, Dataset(file), hooks=..., out=dir, store_dtype=...)`: shards + index
    plain      the same windows in the same batches through plain forwards (no hooks), then
               `safetensors.torch.save_file` of the same number of bytes per shard

Memory: the child's peak RSS (VmHWM) after the model is loaded and one warm-up capture ran, reset
through /proc/self/clear_refs, so it is what the capture itself holds. Throughput: rows (token
positions) a second, capture and plain interleaved `--repeats` times in one child, best of each.

    OMP_NUM_THREADS=1 python benchmarks/bench_capture_dataset.py [--texts 200] [--hooks resid_post]
    [--store-dtype float16]
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import rss

TOKENS = 127  # per text; with BOS a window of 128


def write_texts(path: Path, n: int) -> Path:
    """`n` texts of TOKENS tokens each, cut from the held-out text (cycled), as JSON Lines."""
    from transformers import AutoTokenizer

    from probes.core.load import BUNDLED_DIR

    tok = AutoTokenizer.from_pretrained(BUNDLED_DIR)
    ids = tok((Path(BUNDLED_DIR) / "heldout.txt").read_text(encoding="utf-8"), add_special_tokens=False)[
        "input_ids"
    ]
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            start = (i * TOKENS) % (len(ids) - TOKENS)
            fh.write(json.dumps({"text": tok.decode(ids[start : start + TOKENS])}) + "\n")
    return path


def plain(model, data, names: list[str], store_dtype: str, shard_bytes: int, out: Path) -> int:
    """Forwards of the capture's batches without hooks, then writing as many bytes a shard; returns rows."""
    import torch
    from safetensors.torch import save_file

    import probes
    from probes.core.runner.hooked import forward_step
    from probes.core.windows import batches
    from probes.studies.capture.dataset import _shards

    MAX_TOKENS = (
        inspect.signature(probes.capture_dataset).parameters["max_tokens"].default
    )  # the capture's batches

    dtype = getattr(torch, store_dtype)
    d = model.cfg.d_model
    row_bytes = len(names) * d * dtype.itemsize + 24
    rows = 0
    with torch.no_grad():
        for k, group in enumerate(_shards(model, data, True, max(1, shard_bytes // row_bytes), [])):
            n = sum(len(w.ids) for w, _ in group)
            for batch in batches(model, [w for w, _ in group], max_tokens=MAX_TOKENS):
                forward_step(model, batch.ids, None, 0)
            tensors = {name: torch.zeros(n, d, dtype=dtype) for name in names}
            tensors.update({key: torch.zeros(n, dtype=torch.int64) for key in ("tokens", "text", "position")})
            save_file(tensors, str(out / f"plain-{k:05d}.safetensors"))
            rows += n
    return rows


def _child(args) -> int:
    import torch

    import probes
    from probes.core.dataset import Dataset

    torch.set_num_threads(args.threads)
    model = probes.load()
    data = Dataset(args.data)
    kw = {"hooks": args.hooks, "store_dtype": args.store_dtype, "shard_bytes": args.shard_bytes}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        probes.capture(
            model, Dataset(data, max_texts=4), out=tmp / "warm", **kw
        )  # first-call costs off the clock
        if args.child == "memory":
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            base = rss("VmRSS")
            t = time.perf_counter()
            acts = probes.capture(model, data, out=tmp / "run", **kw)
            seconds = time.perf_counter() - t
            print(
                json.dumps(
                    {
                        "peak_mib": rss("VmHWM") / 2**20,
                        "added_mib": (rss("VmHWM") - base) / 2**20,
                        "rows": acts.n_rows,
                        "texts": len(acts),
                        "seconds": seconds,
                    }
                )
            )
            return 0
        names = list(probes.load_activations(tmp / "warm").names)
        best = {"capture": float("inf"), "plain": float("inf")}
        rows = 0
        for r in range(args.repeats):
            for mode in ("plain", "capture"):
                out = tmp / f"{mode}{r}"
                out.mkdir()
                t = time.perf_counter()
                if mode == "capture":
                    rows = probes.capture(model, data, out=out, **kw).n_rows
                else:
                    plain(model, data, names, args.store_dtype or "float32", args.shard_bytes, out)
                best[mode] = min(best[mode], time.perf_counter() - t)
                for f in out.iterdir():  # keep the disk from filling across repeats
                    f.unlink()
        print(json.dumps({"rows": rows, **best}))
    return 0


def run_child(args, child: str, data: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        child,
        "--data",
        str(data),
        "--hooks",
        args.hooks,
        "--shard-bytes",
        str(args.shard_bytes),
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
        "--tmp",
        str(args.tmp),
    ]
    if args.store_dtype:
        cmd += ["--store-dtype", args.store_dtype]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"child {child} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0]
    )  # the first paragraph; argparse rewraps it
    p.add_argument("--texts", type=int, default=200, help="N: memory is compared for N and 10N texts")
    p.add_argument("--hooks", default="resid_post")
    p.add_argument("--store-dtype", default="float16")
    p.add_argument("--shard-bytes", type=int, default=16 << 20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tmp", default=tempfile.gettempdir())
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        small = write_texts(Path(tmp) / "small.jsonl", args.texts)
        large = write_texts(Path(tmp) / "large.jsonl", 10 * args.texts)
        a = run_child(args, "memory", small)
        b = run_child(args, "memory", large)
        speed = run_child(args, "speed", small)
    print(
        f"capture over the bundled model ({args.hooks}, stored {args.store_dtype}, shards of "
        f"{args.shard_bytes >> 20} MiB, {args.threads} thread(s), texts of {TOKENS + 1} tokens with BOS)"
    )
    print(f"{'texts':>7} {'rows':>9} {'peak RSS':>10} {'added by capture':>17} {'seconds':>8}")
    for r in (a, b):
        print(
            f"{r['texts']:>7} {r['rows']:>9} {r['peak_mib']:>7.0f} MiB {r['added_mib']:>13.0f} MiB "
            f"{r['seconds']:>8.1f}"
        )
    print(
        f"peak RSS {10 * args.texts} vs {args.texts} texts: {b['peak_mib'] / a['peak_mib']:.2f}x (target <= "
        f"1.2x); added by the capture: {b['added_mib'] / max(a['added_mib'], 1e-9):.2f}x"
    )
    ratio = speed["plain"] / speed["capture"]
    print(
        f"throughput over {args.texts} texts ({speed['rows']} rows), best of {args.repeats}: capture "
        f"{speed['rows'] / speed['capture']:,.0f} rows/s, plain forwards + safetensors writing "
        f"{speed['rows'] / speed['plain']:,.0f} rows/s: {ratio:.2f}x (target >= 0.5x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
