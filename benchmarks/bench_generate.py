"""Generation speed, as ratios measured side by side in one run (not a timed test).

Builds a 12-block, d_model 768 GPT-2 (GPT-2 small's shape, random weights) in a temp folder and
decodes 64 tokens greedily with:
  - transformers' `generate` on the same weights (the reference, 1.0x);
  - `probes.generate` with no probe active (target: >= 0.95x);
  - `probes.generate` through the hooked bridge path (what runs while a capture or lens is attached);
  - a nanoGPT-style loop without KV cache (the floor, about 0.4x);
  - `probes.generate` inside `probes.skip(model, "odd")` (target: >= 1.5x the no-probe speed).

    python benchmarks/bench_generate.py [--tokens 64] [--repeats 5] [--threads N] [--device cuda]
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
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import GPT2LMHeadModel

    import probes

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "gpt2-small-shape"
        gpt2_small(ckpt)
        model = probes.load(str(ckpt), device=args.device)
        hf = (
            GPT2LMHeadModel.from_pretrained(ckpt).to(args.device).eval()
        )  # transformers' default attention (sdpa)
    prompt = "ROMEO: What light through yonder window breaks? It is the east, and Juliet is the sun."
    from probes.core.prompt import encode

    ids = encode(model, prompt)
    n = args.tokens
    t_ids = torch.tensor([ids], device=args.device)

    def hf_generate():
        with torch.no_grad():
            out = hf.generate(
                t_ids,
                attention_mask=torch.ones_like(t_ids),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=hf.config.eos_token_id,
            )
        return out[0, len(ids) :].tolist()

    def probes_generate():
        return probes.generate(model, prompt, max_new_tokens=n, greedy=True)[0].tokens

    def probes_hooked():
        # Any attached hook sends generation through the bridge (every HookPoint runs).
        with probes.attached(model, [("hook_embed", lambda t, hook: None)]):
            return probes.generate(model, prompt, max_new_tokens=n, greedy=True)[0].tokens

    def nanogpt_no_cache():
        seq = list(ids)
        with torch.no_grad():
            for _ in range(n):
                seq.append(
                    int(hf(torch.tensor([seq], device=args.device), use_cache=False).logits[0, -1].argmax())
                )
        return seq[len(ids) :]

    def probes_skip_odd():
        with probes.skip(model, "odd"):
            return probes.generate(model, prompt, max_new_tokens=n, greedy=True)[0].tokens

    runs = {
        "transformers generate": hf_generate,
        "probes.generate": probes_generate,
        "probes.generate, hooked bridge path": probes_hooked,
        "nanoGPT loop, no KV cache": nanogpt_no_cache,
        "probes.generate inside skip(odd)": probes_skip_odd,
    }
    outputs, times = interleaved(runs, args.repeats, args.device)  # the warm-up's outputs are compared below
    tps = {k: n / statistics.median(v) for k, v in times.items()}
    ref = tps["transformers generate"]
    print(
        f"greedy decoding, {n} new tokens, 12 blocks x d_model 768, device {args.device}, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    for k in runs:
        print(f"  {k:38s} {tps[k]:8.1f} tokens/s   {tps[k] / ref:5.2f}x transformers")
    print(
        f"probes.generate / transformers generate:        {tps['probes.generate'] / ref:.2f}x  (target >= "
        "0.95)"
    )
    print(
        f"nanoGPT no-cache loop / transformers generate:  {tps['nanoGPT loop, no KV cache'] / ref:.2f}x  "
        "(the floor)"
    )
    print(
        f"skip(odd) / no probe:                           "
        f"{tps['probes.generate inside skip(odd)'] / tps['probes.generate']:.2f}x  (target >= 1.5)"
    )
    same = (
        outputs["probes.generate"]
        == outputs["transformers generate"]
        == outputs["probes.generate, hooked bridge path"]
    )
    print(f"greedy tokens identical across transformers, fast and hooked paths: {same}")


if __name__ == "__main__":
    main()
