"""`probes generate`: sample continuations with nanoGPT's sample.py controls, with any probe active."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from probes.cli import options as o
from probes.cli.output import emit

# generate takes each of these as a comma list and runs every combination (one load, one seed).
_GRID = " A comma list ({}) runs each value; several lists run every combination."
Temperatures = Annotated[
    str,
    typer.Option(
        "--temperature", "-t", help="Sampling temperature; 0 means greedy." + _GRID.format("0.1,1,10")
    ),
]
TopKs = Annotated[
    str,
    typer.Option(
        "--top-k", help="Sample from the k most likely tokens only; 0: no top-k." + _GRID.format("200,2")
    ),
]
TopPs = Annotated[
    str | None,
    typer.Option(
        "--top-p",
        help="Nucleus sampling: keep the smallest set of tokens with "
        "this much mass, in (0, 1]." + _GRID.format("0.9,1"),
    ),
]


Prompts = Annotated[
    str | None,
    typer.Option(
        "--prompts",
        help="Many prompts, decoded together in batches: FILE:path with one prompt per line (blank lines "
        'skipped; --split paragraphs: separated by blank lines), a .jsonl file with a "text" field, or a '
        "saved Hugging Face dataset directory.",
    ),
]


MaxPrompts = Annotated[
    int | None, typer.Option("--max-texts", help="With --prompts: use only the first N prompts.")
]
SplitPrompts = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="With --prompts, how a text file holds its prompts: "
        "lines (one per line, blank lines skipped; the default) or paragraphs "
        "(separated by blank lines).",
    ),
]


def generate(
    prompt: o.Prompt = None,
    prompts: Prompts = None,
    max_texts: MaxPrompts = None,
    split: SplitPrompts = None,
    num_samples: o.NumSamples = o.SAMPLING.num_samples,
    max_new_tokens: o.MaxNewTokens = o.SAMPLING.max_new_tokens,
    temperature: Temperatures = f"{o.SAMPLING.temperature:g}",
    top_k: TopKs = str(o.SAMPLING.top_k or 0),
    top_p: TopPs = None if o.SAMPLING.top_p is None else f"{o.SAMPLING.top_p:g}",
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
    """Generate text from a prompt (defaults as nanoGPT's sample.py: a newline as the prompt, temperature
    {temperature:g}, top-k {top_k}, seed {seed}).

    Comma lists of temperatures, top-k and top-p values (--temperature 0.1,1,10 --top-k 200,2) run every
    combination with the same seed and one model load, each under its own header.
    """
    import probes
    from probes.cli.common import Target
    from probes.core.sampling import SamplingConfig
    from probes.meta import model_meta
    from probes.studies.settings import grid_configs, sampling_lists

    ts, ks, ps = sampling_lists(temperature, top_k, top_p)
    cfg = SamplingConfig(
        temperature=ts[0],
        top_k=ks[0],
        top_p=ps[0],
        greedy=greedy,
        seed=seed,
        max_new_tokens=max_new_tokens,
        num_samples=num_samples,
        stop_at_eos=stop_at_eos,
        bos=bos,
    )
    grid = grid_configs(ts, ks, ps, config=cfg)  # every setting checked before loading
    if stream and json:
        from probes.errors import ProbesError

        raise ProbesError(
            "--stream prints text as it comes; --json prints one document at the end: choose one"
        )
    if prompts is not None:
        return _many(
            prompts,
            max_texts,
            split,
            prompt,
            stream,
            grid,
            cfg,
            skip,
            keep,
            model,
            device,
            dtype,
            threads,
            json,
        )
    if max_texts is not None or split is not None:
        from probes.errors import ProbesError

        raise ProbesError("--max-texts and --split choose prompts of --prompts FILE; give --prompts")
    if prompt is None:
        prompt = "\n"  # nanoGPT's sample.py default; declared here so --help does not print a bare newline
    target = Target(model, device, dtype, prompt, bos=bos, threads=threads)
    skipped = target.skipped(skip, keep)
    m = target.load()
    streamer = _Streamer(num_samples, len(grid)) if stream else None
    with probes.skip(m, skipped):
        result = probes.generate_grid(
            m,
            prompt,
            cfg,
            temperature=ts,
            top_k=ks,
            top_p=ps,
            on_setting=streamer and streamer.setting,
            on_token=streamer,
        )
        meta = model_meta(m)
    if stream:
        sys.stdout.write("\n")
        for run in result:
            _timing_line(run.timing, run.config if len(grid) > 1 else None)
        return
    if len(grid) == 1:  # one setting: the plain document of `probes.generate`
        emit({**meta, **result.runs[0].as_dict()}, json, _render)
    else:
        emit({**meta, **result.as_dict()}, json, _render_grid)


generate.__doc__ = generate.__doc__.format(**o.SAMPLING.to_dict())  # the help shows SamplingConfig's defaults


def _many(
    spec, max_texts, split, prompt, stream, grid, cfg, skip, keep, model, device, dtype, threads, json
) -> None:
    """`generate --prompts`: every prompt (and setting) decoded together, grouped by prompt in the output."""
    import probes
    from probes.cli.common import Target
    from probes.core.dataset import Dataset
    from probes.errors import ProbesError
    from probes.meta import model_meta

    if prompt is not None:
        raise ProbesError("--prompt and --prompts: give one prompt or a file of prompts, not both")
    if stream:
        raise ProbesError("--stream prints one sample at a time; --prompts decodes many together: choose one")
    data = Dataset(spec, split=split, max_texts=max_texts)
    data.check()  # every line readable, before the model loads
    target = Target(model, device, dtype, bos=cfg.bos, threads=threads)
    skipped = target.skipped(skip, keep)
    m = target.load()
    with probes.skip(m, skipped):
        runs = probes.generate(m, data, list(grid) if len(grid) > 1 else grid[0])
        meta = model_meta(m)
    emit({**meta, **runs.as_dict()}, json, _render_many)


def _render_many(d: dict) -> str:
    from probes.core.sampling import SamplingConfig

    out = [f"model {d['model']}; {len(d['prompts'])} prompts from {d['dataset']['source']}{_skipped(d)}"]
    for i, item in enumerate(d["prompts"], 1):
        out += ["", f"=== prompt {i}/{len(d['prompts'])} ({item['where']}): {item['prompt']!r} ==="]
        for run in item.get("grid") or [item]:
            cfg = SamplingConfig.from_dict(run["config"])
            if "grid" in item:
                out.append(_header(cfg))
            out += _samples_lines(item["prompt"], run["samples"])
    out.append("---")
    _timing_line(d["timing"])
    return "\n".join(out)


class _Streamer:
    """Writes each token as it comes, with a header line when a new setting (of a grid) or sample starts."""

    def __init__(self, num_samples: int, n_settings: int):
        self.num_samples, self.n_settings, self.current, self.started = num_samples, n_settings, -1, False

    def setting(self, i: int, config) -> None:
        if self.n_settings > 1:
            sys.stdout.write(("\n" if self.started else "") + _header(config) + "\n")
            self.started = True
        self.current = -1

    def __call__(self, k: int, token: int, text: str) -> None:
        if k != self.current:
            sys.stdout.write(
                ("\n" if self.current >= 0 else "") + f"--- sample {k + 1}/{self.num_samples} ---\n"
            )
            self.current = k
        sys.stdout.write(text)
        sys.stdout.flush()


def _header(config) -> str:
    return f"=== {config.label()} ==="


def _timing_line(t: dict, config=None) -> None:
    where = f"{config.label()}: " if config is not None else ""
    together = t.get("decoded_with")
    batch = ""
    if together:
        n, k = together["prompts"], together["settings"]
        batch = f", {n} prompt{'s' * (n != 1)} x {k} setting{'s' * (k != 1)} in batches of {t['batch_size']}"
    print(
        f"[{where}{t['new_tokens']} tokens in {t['seconds']:.2f} s, {t['tokens_per_second']} "
        f"tokens/s{batch}; one run]",
        file=sys.stderr,
    )


def _samples_lines(prompt: str, samples: list[dict]) -> list[str]:
    out = []
    for k, sample in enumerate(samples, 1):
        out.append(f"--- sample {k}/{len(samples)} ---")
        out.append(prompt + sample["text"])
    return out


def _skipped(d: dict) -> str:
    return f", blocks skipped: {d['skipped_blocks']}" if d["skipped_blocks"] else ""


def _render(d: dict) -> str:
    from probes.core.sampling import SamplingConfig

    cfg = SamplingConfig.from_dict(d["config"])
    out = [f"model {d['model']}; {cfg.label()}; seed {cfg.seed}{_skipped(d)}", f"prompt: {d['prompt']!r}"]
    out += _samples_lines(d["prompt"], d["samples"]) + ["---"]
    _timing_line(d["timing"])
    return "\n".join(out)


def _render_grid(d: dict) -> str:
    from probes.core.sampling import SamplingConfig

    configs = [SamplingConfig.from_dict(run["config"]) for run in d["grid"]]
    out = [
        f"model {d['model']}; {len(configs)} settings, each with seed {configs[0].seed}{_skipped(d)}",
        f"prompt: {d['prompt']!r}",
    ]
    for cfg, run in zip(configs, d["grid"]):
        out += ["", _header(cfg), *_samples_lines(d["prompt"], run["samples"])]
        if "timing" in run:
            _timing_line(run["timing"], cfg)
    if "timing" in d:
        _timing_line(d["timing"])  # all settings decoded together
    out.append("---")
    return "\n".join(out)
