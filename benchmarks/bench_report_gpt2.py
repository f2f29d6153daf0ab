"""Where `probes report --model gpt2` spends its time, on a GPT-2-small-shaped checkpoint (not a timed test).

Builds a random 12-block, d_model 768, 1024-context GPT-2 with GPT-2's real tokenizer, laid out as a
Hugging Face cache (`HF_HOME`, `HF_HUB_OFFLINE=1`, as a user with a previous download has it), runs
the report command on it in a fresh process and prints the wall time and a table of its stages:
each progress note the report prints on stderr opens a stage, timed by wall clock and by the
process's CPU time (read from /proc, so other load on a shared machine inflates wall time more
than CPU time).

    python benchmarks/bench_report_gpt2.py [--threads 2] [--home DIR] [-- extra report args, e.g. --no-eval]

`--home DIR` keeps (or reuses) the checkpoint there instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_home(home: Path) -> None:
    """The hub cache with `gpt2` of GPT-2 small's shape (random weights), unless it is there already."""
    if (home / "hub" / "models--gpt2").is_dir():
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import build_hub_cache

    build_hub_cache(home, "gpt2", n_layer=12, n_embd=768, n_head=12, n_positions=1024)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_report(
    home: Path, out: Path, threads: int, extra: list[str]
) -> tuple[float, list[tuple[str, float, float]]]:
    """Total wall seconds and (note, wall s, CPU s) per stage: from one stderr note to the next."""
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    env.pop("HF_HUB_CACHE", None)
    cmd = [
        sys.executable,
        "-c",
        "from probes.cli.app import entry; entry()",
        "report",
        "--model",
        "gpt2",
        "--out",
        str(out),
        "--threads",
        str(threads),
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    marks = [("start (imports, argument checks)", t0, 0.0)]
    last_cpu = 0.0
    for line in proc.stderr:
        line = line.strip()
        if not line or re.match(r"^\W*$", line):
            continue
        last_cpu = max(last_cpu, cpu_seconds(proc.pid))
        marks.append((line[:70], time.perf_counter(), last_cpu))
    proc.wait()
    end = time.perf_counter()
    if proc.returncode:
        raise SystemExit(f"the report failed (exit {proc.returncode}); last note: {marks[-1][0]}")
    # The child's CPU time after it exits: from our rusage of waited-for children.
    total_cpu = os.times().children_user + os.times().children_system
    stages = []
    for (note, t, c), (_, t_next, c_next) in zip(marks, marks[1:] + [("end", end, total_cpu)]):
        stages.append((note, t_next - t, max(0.0, c_next - c)))
    return end - t0, stages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--home", type=Path, default=None, help="keep the hub cache here (built if missing)")
    p.add_argument("extra", nargs="*", help="extra arguments for `probes report` (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "hf-home"
        t = time.perf_counter()
        build_home(home)
        print(f"checkpoint ready in {time.perf_counter() - t:.1f} s ({home})")
        total, stages = run_report(home, Path(tmp) / "report", args.threads, args.extra)
    width = max(len(n) for n, _, _ in stages)
    print(f"\nprobes report --model gpt2 (GPT-2-small shape, {args.threads} threads): {total:.1f} s wall\n")
    print(f"{'stage (from this note to the next)':<{width}}  {'wall s':>7}  {'CPU s':>7}")
    for note, wall, cpu in stages:
        print(f"{note:<{width}}  {wall:7.1f}  {cpu:7.1f}")
    print(f"{'total':<{width}}  {total:7.1f}  {sum(c for _, _, c in stages):7.1f}")
    print(
        "\nWall time on a shared machine includes waiting for the CPU; CPU time is the process's own "
        "(with 2 threads it can exceed wall time)."
    )


if __name__ == "__main__":
    main()
