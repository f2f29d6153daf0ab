"""Batched sampling speed, as ratios measured side by side in one run (not a timed test).

`num_samples=16` continuations of 100 new tokens (T=0.8, top-k 200) on a GPT-2-small-shaped
checkpoint (12 blocks, d_model 768, GPT-2's 50,257-token vocabulary, random weights):
  - `probes.generate`, the 16 samples in one batch;
  - `probes.generate(batch_size=1)`: the same 16 samples one after another (target: batch >= 6x);
  - transformers' `generate(num_return_sequences=16, do_sample=True)` on the same weights
    (target: batch >= 1.0x).
Variants run interleaved, after a warm-up, and the medians are compared.

    python benchmarks/bench_batch_generate.py [--samples 16] [--tokens 100] [--repeats 3] [--threads N]
    [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from common import gpt2_small, interleaved


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--tokens", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import GPT2LMHeadModel

    import probes

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "gpt2-small-shape"
        gpt2_small(ckpt, gpt2_vocab=True)
        model = probes.load(str(ckpt), device=args.device)
        hf = GPT2LMHeadModel.from_pretrained(ckpt).to(args.device).eval()
    prompt = "A long time ago in a galaxy far, far away..."
    cfg = probes.SamplingConfig(
        temperature=0.8, top_k=200, max_new_tokens=args.tokens, num_samples=args.samples
    )
    from probes.core.prompt import encode

    ids = torch.tensor([encode(model, prompt)], device=args.device)

    def batched():
        return probes.generate(model, prompt, cfg)

    def sequential():
        return probes.generate(model, prompt, cfg, batch_size=1)

    def hf_generate():
        with torch.no_grad():
            return hf.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=0.8,
                top_k=200,
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                num_return_sequences=args.samples,
                pad_token_id=hf.config.eos_token_id,
            )

    runs = {
        "probes.generate, one batch of 16": batched,
        "probes.generate, 16 one by one": sequential,
        "transformers generate(num_return_sequences)": hf_generate,
    }
    first, times = interleaved(runs, args.repeats, args.device)
    same = [s.tokens for s in first["probes.generate, one batch of 16"]] == [
        s.tokens for s in first["probes.generate, 16 one by one"]
    ]
    n = args.samples * args.tokens
    tps = {k: n / statistics.median(v) for k, v in times.items()}
    spread = {k: (n / max(v), n / min(v)) for k, v in times.items()}
    print(
        f"{args.samples} samples x {args.tokens} new tokens (T=0.8, top-k 200), 12 blocks x d_model 768, "
        f"vocab 50257, device {args.device}, torch threads {torch.get_num_threads()}, median of "
        f"{args.repeats} after a warm-up"
    )
    for k in runs:
        print(f"  {k:44s} {tps[k]:8.1f} tokens/s  (range {spread[k][0]:.1f}-{spread[k][1]:.1f})")
    b = tps["probes.generate, one batch of 16"]
    print(
        f"batch / one by one:               {b / tps['probes.generate, 16 one by one']:.2f}x  (target >= 6)"
    )
    print(
        f"batch / transformers generate:    {b / tps['transformers generate(num_return_sequences)']:.2f}x  "
        "(target >= 1.0)"
    )
    print(f"batched samples identical to one-by-one samples: {same}")


if __name__ == "__main__":
    main()
