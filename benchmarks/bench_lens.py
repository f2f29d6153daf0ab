"""Benchmark: the streamed logit lens against one plain forward (target: at most 6x the time).

Builds a random 12-block, d_model 768 GPT-2 checkpoint in a temporary directory (the bundled
tokenizer; `--vocab 50257` pads the vocabulary to GPT-2's), loads it through `probes.load`, and
times a 256-token prompt:

    forward    one plain forward, `model(ids)` (logits for every position)
    lens       `probes.logit_lens(model, ids)` over every position (L+1 rows)
    naive      for comparison: every row decoded at once, (rows, pos, vocab) materialised

It prints the median times, the ratios to the forward, and the peak memory each run adds (CUDA:
the allocator's peak; CPU: the peak RSS of a child process, reset before each run through
/proc/self/clear_refs).

    OMP_NUM_THREADS=1 python benchmarks/bench_lens.py [--vocab 50257] [--device cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import gpt2_small, rss, timed


def naive_lens(model, ids):
    """The materialising lens: all rows cached, stacked and decoded at once (rows, pos, vocab)."""
    import torch

    from probes.core.hooks import attached, row_hooks
    from probes.core.runner.hooked import HookedRunner

    names = row_hooks(model.cfg.n_layers)
    cache = {}
    with (
        torch.no_grad(),
        attached(model, [(n, lambda t, hook, n=n: cache.__setitem__(n, t[0])) for n in names]),
    ):
        model(ids)
        resid = torch.stack([cache[n] for n in names])  # (rows, pos, d_model)
        logp = HookedRunner(model).readout(resid).float().log_softmax(-1)  # (rows, pos, vocab)
        p = logp.exp()
        entropy = -(p * logp).sum(-1)  # (rows, pos), nats
        kl = (p[-1] * (logp[-1] - logp)).sum(-1)
        top = p.topk(5, dim=-1)
        rank = (logp > logp.gather(-1, logp[-1].argmax(-1)[None, :, None].expand(len(names), -1, 1))).sum(
            -1
        ) + 1
    return entropy.cpu(), kl.cpu(), top.values.cpu(), rank.cpu()


class Peak:
    """Peak memory a block of code adds, in MiB."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = rss("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            except OSError:
                self.base = None
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mib = None if self.base is None else (rss("VmHWM") - self.base) / 2**20
        return False


def runs(model, ids_list, device, naive: bool):
    import torch

    from probes.studies.lens.logit import logit_lens

    ids = torch.tensor([ids_list], device=device)

    def forward():
        with torch.no_grad():
            model(ids)

    out = {"forward": forward, "lens (streamed)": lambda: logit_lens(model, ids_list)}
    if naive:
        out["naive (materialised)"] = lambda: naive_lens(model, ids)
    return out


def peaks(ckpt: str, args) -> dict:
    """Peak memory each run adds; on a CPU measured in a child process (see `_child`)."""
    import json
    import subprocess

    if args.device != "cpu":
        return {}
    # glibc keeps freed blocks below its (growing) mmap threshold in the heap, so a run reusing
    # them would show no peak at all; with a fixed threshold large blocks go back to the OS on
    # free and the peak RSS is the run's own. That setting slows every op down, so timings are
    # taken here and memory in a child process.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    cmd = [sys.executable, __file__, "--memory-of", ckpt, "--tokens", str(args.tokens)] + (
        ["--no-naive"] if args.no_naive else []
    )
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"memory measurement failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def prompt_ids(model, n: int) -> list[int]:
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randint(0, min(model.cfg.d_vocab, 8192), (n,), generator=g).tolist()


def _child(args) -> int:
    import json

    import torch

    import probes

    device = torch.device(args.device)
    model = probes.load(args.memory_of, device=device)
    result = {}
    for name, fn in runs(model, prompt_ids(model, args.tokens), device, not args.no_naive).items():
        fn()  # warm-up: lazily built state is not the run's own memory
        with Peak(device) as peak:
            fn()
        result[name] = peak.mib
    print(json.dumps(result))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--vocab", type=int, default=None, help="pad the vocabulary to this size (GPT-2: 50257)"
    )
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-naive", action="store_true", help="skip the materialising comparison")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: the memory-measuring child
    args = parser.parse_args(argv)
    if args.memory_of:
        return _child(args)

    import torch

    import probes

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "ckpt")
        print("building a 12-block d_model 768 checkpoint ...", file=sys.stderr)
        gpt2_small(ckpt, vocab=args.vocab)
        model = probes.load(ckpt, device=device)
        cfg = model.cfg
        assert (cfg.n_layers, cfg.d_model) == (12, 768)
        ids_list = prompt_ids(model, args.tokens)
        times = {}
        for name, fn in runs(model, ids_list, device, not args.no_naive).items():
            times[name] = timed(
                fn, device, args.repeats if "naive" not in name else max(1, args.repeats // 2)
            )
        if device.type == "cuda":
            mem = {}
            for name, fn in runs(model, ids_list, device, not args.no_naive).items():
                with Peak(device) as peak:
                    fn()
                mem[name] = peak.mib
        else:
            del model
            mem = peaks(ckpt, args)

    t_fwd = times["forward"]
    m_fwd = mem.get("forward")
    print(
        f"model: 12 blocks, d_model 768, vocab {cfg.d_vocab}; prompt {args.tokens} tokens; device {device}; "
        f"torch threads {torch.get_num_threads()}"
    )
    for name, t in times.items():
        m = mem.get(name)
        shown = f"peak +{m:7.1f} MiB" if m is not None else "peak n/a"
        if m is not None and m_fwd:
            shown += f" ({m / m_fwd:.1f}x forward)"
        print(f"  {name:22s} {t * 1000:9.1f} ms  {t / t_fwd:5.2f}x forward   {shown}")
    ratio = times["lens (streamed)"] / t_fwd
    verdict = "ok" if ratio <= 6 else "OVER TARGET"
    print(f"lens / forward time ratio: {ratio:.2f} (target <= 6: {verdict})")
    return 0 if ratio <= 6 else 1


if __name__ == "__main__":
    sys.exit(main())
