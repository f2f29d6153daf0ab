"""`probes generate`: sample continuations with nanoGPT's sample.py controls, with any probe active."""

from __future__ import annotations

import sys

from probes.cli import options as o
from probes.cli.output import emit


def generate(
    prompt: o.Prompt = None,
    num_samples: o.NumSamples = o.SAMPLING.num_samples,
    max_new_tokens: o.MaxNewTokens = o.SAMPLING.max_new_tokens,
    temperature: o.Temperature = o.SAMPLING.temperature,
    top_k: o.TopK = o.SAMPLING.top_k,
    top_p: o.TopP = o.SAMPLING.top_p,
    greedy: o.Greedy = o.SAMPLING.greedy,
    seed: o.Seed = o.SAMPLING.seed,
    bos: o.Bos = o.SAMPLING.bos,
    stop_at_eos: o.StopAtEos = o.SAMPLING.stop_at_eos,
    stream: o.Stream = False,
    skip: o.Skip = None,
    keep: o.Keep = None,
    model: o.Model = None,
    device: o.Device = None,
    dtype: o.Dtype = None,
    threads: o.Threads = None,
    json: o.Json = False,
) -> None:
    """Generate text from a prompt (defaults as nanoGPT's sample.py: a newline as the prompt, temperature {temperature:g}, top-k {top_k}, seed {seed})."""
    import probes
    from probes.cli.common import Target
    from probes.meta import model_meta
    from probes.core.sampling import SamplingConfig

    cfg = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy, seed=seed,
                         max_new_tokens=max_new_tokens, num_samples=num_samples, stop_at_eos=stop_at_eos, bos=bos)
    if stream and json:
        from probes.errors import ProbesError

        raise ProbesError("--stream prints text as it comes; --json prints one document at the end: choose one")
    if prompt is None:
        prompt = "\n"  # nanoGPT's sample.py default; declared here so --help does not print a bare newline
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads)
    skipped = target.skipped(skip, keep)
    m = target.load()
    on_token = _Streamer(num_samples) if stream and not json else None
    with probes.skip(m, skipped):
        samples = probes.generate(m, prompt, cfg, on_token=on_token)
        meta = model_meta(m)
    data = {**meta, **samples.as_dict()}
    if stream and not json:
        sys.stdout.write("\n")
        _timing_line(data)
        return
    emit(data, json, _render)


generate.__doc__ = generate.__doc__.format(**o.SAMPLING.to_dict())  # the help shows SamplingConfig's defaults


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
    from probes.core.sampling import SamplingConfig

    cfg = SamplingConfig.from_dict(d["config"])
    skipped = f", blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""
    out = [f"model {d['model']}; {cfg.label()}; seed {cfg.seed}{skipped}", f"prompt: {d['prompt']!r}"]
    for k, sample in enumerate(d["samples"], 1):
        out.append(f"--- sample {k}/{len(d['samples'])} ---")
        out.append(d["prompt"] + sample["text"])
    out.append("---")
    _timing_line(d)
    return "\n".join(out)
