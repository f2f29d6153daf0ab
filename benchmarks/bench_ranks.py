"""Ranks under torchrun: rows a second and memory of 2 ranks against 1, side by side in one run.

On the bundled model (6 blocks, d_model 192), texts of 127 tokens cut from its held-out Shakespeare
(`bench_capture_dataset.write_texts`), one thread a rank:

    capture    `probes.capture(model, Dataset(file), hooks="resid_post", out=dir, shard_bytes="4M")`
    lens       `probes.lens_over(model, Dataset(file), n_boot=200)`

Each configuration runs as `torchrun --standalone --nproc-per-node N` of this script's child, which
loads the model, warms up on 8 texts, resets each rank's peak RSS (/proc/self/clear_refs), and then
times each study between barriers (the time is rank 0's, from the first barrier to the last, so
it covers every rank's share and the combining). The 1-rank and 2-rank runs take turns `--repeats`
times; each figure is the best of its runs. Rows a second are token positions (with BOS) of the
whole dataset; memory is each rank's peak RSS during the studies (targets: 2 ranks >= 1.7x the rows
a second of 1 rank; peak per rank <= 1.1x the one-process peak).

    python benchmarks/bench_ranks.py [--texts 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import rss

STUDIES = ("capture", "lens")
SHARD = "4M"  # 400 texts make about 60 shards: a shard is a rank's unit of work


def _child(args) -> int:
    import torch

    import probes
    from probes.core import distributed
    from probes.core.dataset import Dataset

    torch.set_num_threads(1)
    model = probes.load()  # joins the other ranks
    data = Dataset(args.data)
    out = Path(args.tmp)
    probes.capture(model, Dataset(data, max_texts=8), hooks="resid_post", out=out / "warm")
    probes.lens_over(model, Dataset(data, max_texts=8), n_boot=200)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    got = {}
    for study in STUDIES:
        distributed.barrier()
        t = time.perf_counter()
        if study == "capture":
            rows = probes.capture(model, data, hooks="resid_post", out=out / "run", shard_bytes=SHARD).n_rows
        else:
            lens = probes.lens_over(model, data, n_boot=200)
            rows = lens.n_positions
        distributed.barrier()
        got[study] = {"seconds": time.perf_counter() - t, "rows": rows}
    peaks = distributed.gather(rss("VmHWM") / 2**20)
    if distributed.is_main():
        print(json.dumps({"studies": got, "peak_mib": peaks}))
    distributed.stop()
    return 0


def run(ranks: int, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        cmd += [__file__, "--child", "--data", str(data), "--tmp", tmp]
        r = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False
        )
        if r.returncode != 0:
            sys.exit(f"{ranks} ranks failed:\n{r.stderr[-3000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    from bench_capture_dataset import write_texts

    with tempfile.TemporaryDirectory() as tmp:
        data = write_texts(Path(tmp) / "texts.jsonl", args.texts)
        best: dict[int, dict] = {}
        for _ in range(args.repeats):
            for ranks in (1, 2):
                got = run(ranks, data)
                b = best.setdefault(ranks, {"peak_mib": max(got["peak_mib"])})
                b["peak_mib"] = min(b["peak_mib"], max(got["peak_mib"]))
                for study, m in got["studies"].items():
                    rate = m["rows"] / m["seconds"]
                    b[study] = max(b.get(study, 0.0), rate)
                    b[f"{study}_rows"] = m["rows"]
    print(f"bundled model, {args.texts} texts of 128 positions, one thread a rank, best of {args.repeats}")
    print(f"{'':10} {'1 rank rows/s':>14} {'2 ranks rows/s':>15} {'ratio':>7}  (target >= 1.7x)")
    for study in STUDIES:
        one, two = best[1][study], best[2][study]
        assert best[1][f"{study}_rows"] == best[2][f"{study}_rows"]
        print(f"{study:10} {one:14,.0f} {two:15,.0f} {two / one:6.2f}x")
    one, two = best[1]["peak_mib"], best[2]["peak_mib"]
    print(f"peak RSS a rank: 1 rank {one:.0f} MiB, 2 ranks {two:.0f} MiB: {two / one:.2f}x (target <= 1.1x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
