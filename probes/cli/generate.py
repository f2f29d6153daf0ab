"""`probes generate`: sample continuations with nanoGPT's sample.py controls, with any probe active."""

from __future__ import annotations

import sys

from probes.cli import options as o
from probes.cli.output import emit, handle_errors


@handle_errors
def generate(
    prompt: o.Prompt = None,
    num_samples: o.NumSamples = 1,
    max_new_tokens: o.MaxNewTokens = 100,
    temperature: o.Temperature = 0.8,
    top_k: o.TopK = 200,
    top_p: o.TopP = None,
    greedy: o.Greedy = False,
    seed: o.Seed = 1337,
    bos: o.Bos = True,
    stop_at_eos: o.StopAtEos = False,
    stream: o.Stream = False,
    skip: o.Skip = None,
    keep: o.Keep = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    json: o.Json = False,
) -> None:
    """Generate text from a prompt (defaults as nanoGPT: a newline as the prompt, temperature 0.8, top-k 200, seed 1337)."""
    import probes
    from probes.cli.common import load_model, model_meta
    from probes.generation import check_counts
    from probes.sampling import SamplingSettings

    SamplingSettings(temperature, top_k or None, top_p, greedy)  # bad values fail before loading
    check_counts(num_samples, max_new_tokens)
    if prompt is None:
        prompt = "\n"  # nanoGPT's sample.py default; declared here so --help does not print a bare newline
    m = load_model(model, device, dtype)
    on_token = _Streamer(num_samples) if stream and not json else None
    with probes.skip(m, skip, keep=keep):
        samples = probes.generate(
            m, prompt, num_samples=num_samples, max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=top_k or None, top_p=top_p, greedy=greedy, seed=seed, bos=bos, stop_at_eos=stop_at_eos,
            on_token=on_token,
        )
        meta = model_meta(m)
    data = {
        **meta, "prompt": samples.prompt, "prompt_tokens": samples.prompt_tokens, "settings": samples.settings,
        "samples": [s.as_dict() for s in samples], "timing": samples.timing,
    }
    if stream and not json:
        sys.stdout.write("\n")
        _timing_line(data)
        return
    emit(data, json, _render)


class _Streamer:
    """Writes each token as it comes, with a header line when a new sample starts."""

    def __init__(self, num_samples: int):
        self.num_samples, self.current = num_samples, -1

    def __call__(self, k: int, token: int, text: str) -> None:
        if k != self.current:
            sys.stdout.write(("\n" if self.current >= 0 else "") + f"--- sample {k + 1}/{self.num_samples} ---\n")
            self.current = k
        sys.stdout.write(text)
        sys.stdout.flush()


def _timing_line(d: dict) -> None:
    t = d["timing"]
    print(f"[{t['new_tokens']} tokens in {t['seconds']:.2f} s, {t['tokens_per_second']} tokens/s]", file=sys.stderr)


def _render(d: dict) -> str:
    s = d["settings"]
    how = "greedy" if s["greedy"] else f"temperature {s['temperature']}, top-k {s['top_k']}, top-p {s['top_p']}"
    skipped = f", blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""
    out = [f"model {d['model']}; {how}; seed {s['seed']}{skipped}", f"prompt: {d['prompt']!r}"]
    for k, sample in enumerate(d["samples"], 1):
        out.append(f"--- sample {k}/{len(d['samples'])} ---")
        out.append(d["prompt"] + sample["text"])
    out.append("---")
    _timing_line(d)
    return "\n".join(out)
