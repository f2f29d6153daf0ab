"""Generation with nanoGPT's sample.py controls, usable inside any probe context."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from probes.core.decode import sample_rows
from probes.core.prompt import TextStream, is_many, prompt_ids, prompts_of
from probes.core.sampling import SamplingConfig
from probes.errors import ProbesError


@dataclass
class Sample:
    """One continuation: its text (continuation only) and token ids."""

    text: str
    tokens: list[int]
    stopped_at_eos: bool = False

    def as_dict(self) -> dict:
        return {"text": self.text, "tokens": self.tokens, "stopped_at_eos": self.stopped_at_eos}

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return (
            f"Sample({text!r}, {len(self.tokens)} tokens{', stopped at EOS' if self.stopped_at_eos else ''})"
        )


class Samples(list):
    """A list of Sample, with the prompt that was fed, the config and the timing of the run."""

    def __init__(self, samples, prompt: str, prompt_tokens: list[int], config: SamplingConfig, timing: dict):
        super().__init__(samples)
        self.prompt, self.prompt_tokens, self.config, self.timing = prompt, prompt_tokens, config, timing

    def as_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "config": self.config.to_dict(),
            "samples": [s.as_dict() for s in self],
            "timing": self.timing,
        }

    def records(self) -> list[dict]:
        """One dict per sample: its index, text, token ids, length and whether it stopped at EOS, with the
        setting it was drawn with (`to_dataframe()`'s rows)."""
        c = self.config
        setting = {"setting": c.label(), "temperature": c.temperature, "top_k": c.top_k, "top_p": c.top_p}
        return [
            {
                "prompt": self.prompt,
                **setting,
                "seed": c.seed,
                "sample": i,
                "text": s.text,
                "tokens": list(s.tokens),
                "n_tokens": len(s.tokens),
                "stopped_at_eos": s.stopped_at_eos,
            }
            for i, s in enumerate(self)
        ]

    def to_dataframe(self):
        """A pandas DataFrame, one row per sample. Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        return frame(self.records())

    def __repr__(self) -> str:
        return (
            f"Samples({len(self)} x {self.config.max_new_tokens} tokens, {self.config.label()}, seed "
            f"{self.config.seed})"
        )


def generate(
    model,
    prompt,
    config: SamplingConfig | list[SamplingConfig] | None = None,
    *,
    on_token: Callable[[int, int, str], None] | None = None,
    batch_size: int = 32,
    **overrides,
):
    """Sample `config.num_samples` continuations of `prompt` (text, `FILE:path`, or token ids), in batches.

    `config` is a SamplingConfig (its defaults follow nanoGPT: temperature 0.8, top-k 200, seed
    1337); keyword arguments such as `max_new_tokens=50, greedy=True` override its fields.
    Sample i draws from its own generator seeded from (seed, i), so a run reproduces exactly and
    sample i depends neither on how many samples are drawn nor on `batch_size` (up to float
    rounding). Everything asked for in one call is decoded together, `batch_size` rows at a time:

    - one prompt, one config: a `Samples`;
    - a list of prompts (or a `probes.Dataset`): a list of Samples, one per prompt, in order;
    - a list of configs (a sampling grid; they share max_new_tokens and stop_at_eos): a list of
      Samples, one per config; with a list of prompts too, a list (prompts) of lists (configs).

    `on_token(row, id, text)` is called as each token is produced (`row` counts the samples of all prompts and
    configs in order; `text` is what the token completes, "" for the first pieces of a character split over
    several tokens, so the texts add up to the sample's). Works inside `probes.skip(...)` and other probes.
    """
    grid = isinstance(config, (list, tuple))
    configs = (
        [SamplingConfig.of(c, **overrides) for c in config]
        if grid
        else [SamplingConfig.of(config, **overrides)]
    )
    if not configs:
        raise ProbesError("give at least one sampling config")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProbesError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if len({c.bos for c in configs}) > 1:
        raise ProbesError("settings decoded together must agree on bos")
    bos = configs[0].bos
    many = is_many(prompt)
    encoded = [
        prompt_ids(model, p, bos=bos) for p in prompts_of(prompt)
    ]  # a dataset's texts are never FILE: specs
    # The runner fuses the fast path's weights (once per model and weight version); get it before
    # the clock starts, or a model's first run pays for the copy and `prune` shows skipping as far
    # faster than it is.
    from probes.core.runner import runner_for

    decoder = runner_for(model).decoder()
    jobs = [
        (p, c, k)
        for p in range(len(encoded))
        for c in range(len(configs))
        for k in range(configs[c].num_samples)
    ]
    tokens: dict[tuple[int, int, int], list[int]] = {}
    stream = TextStream(model.tokenizer)
    t0 = time.perf_counter()
    for b in range(0, len(jobs), batch_size):
        part = jobs[b : b + batch_size]
        said = (lambda r, t, b=b: on_token(b + r, t, stream.add(b + r, t))) if on_token else None
        rows = sample_rows(
            model,
            [encoded[p][1] for p, _, _ in part],
            [configs[c] for _, c, _ in part],
            [k for *_, k in part],
            decoder=decoder,
            on_token=said,
        )
        tokens.update(zip(part, rows))
    # With many prompts or settings the timing covers them all.
    timing = batch_timing(
        tokens.values(),
        time.perf_counter() - t0,
        min(batch_size, len(jobs)),
        {"prompts": len(encoded), "settings": len(configs)} if many or grid else None,
    )

    def samples(p: int, c: int) -> Samples:
        (text, ids) = encoded[p]
        return make_samples(
            model, text, ids, configs[c], [tokens[p, c, k] for k in range(configs[c].num_samples)], timing
        )

    result = [[samples(p, c) for c in range(len(configs))] for p in range(len(encoded))]
    result = [r if grid else r[0] for r in result]
    return Generations(result, prompt, timing) if many else result[0]


class Generations(list):
    """The samples of many prompts, in order: one Samples per prompt, or with several settings one list of
    Samples (one per setting) per prompt.

    `where` says where each prompt came from (`file:line` for a Dataset's text, `#i` in a list),
    `source` names the list or dataset, and `timing` is the one batched decode's.
    """

    def __init__(self, runs: list, prompts, timing: dict):
        from probes.core.dataset import Dataset

        super().__init__(runs)
        self.timing = timing
        if isinstance(prompts, Dataset):
            self.where = [t.where for t in prompts]
            self.source = {**prompts.as_dict(), "texts": len(runs)}
        else:
            self.where = [f"#{i}" for i in range(len(runs))]
            self.source = {"source": "the prompt list", "kind": "list", "texts": len(runs)}

    def __repr__(self) -> str:
        return f"Generations({len(self)} prompts from {self.source['source']})"

    def to_dataframe(self):
        """A pandas DataFrame, one row per (prompt, setting, sample), `where` each prompt came from. Needs
        pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = []
        for where, run in zip(self.where, self):
            for samples in [run] if isinstance(run, Samples) else run:
                rows += [{"where": where, **r} for r in samples.records()]
        return frame(rows)

    def as_dict(self) -> dict:
        items = []
        for where, run in zip(self.where, self):
            if isinstance(run, Samples):
                items.append({"where": where, **{k: v for k, v in run.as_dict().items() if k != "timing"}})
            else:  # one Samples per setting
                items.append(
                    {
                        "where": where,
                        "prompt": run[0].prompt,
                        "prompt_tokens": run[0].prompt_tokens,
                        "grid": [
                            {"config": r.config.to_dict(), "samples": [s.as_dict() for s in r]} for r in run
                        ],
                    }
                )
        return {"dataset": self.source, "prompts": items, "timing": self.timing}


def batch_timing(tokens, seconds: float, batch_size: int, decoded_with: dict | None) -> dict:
    """The timing record of one batched decode (one cold run, not a measured speed) of the token lists
    `tokens`."""
    n_new = sum(map(len, tokens))
    timing = {
        "new_tokens": n_new,
        "seconds": round(seconds, 4),
        "tokens_per_second": round(n_new / seconds, 2) if seconds > 0 else None,
        "batch_size": batch_size,
        "runs": 1,
    }
    if decoded_with is not None:
        timing["decoded_with"] = decoded_with
    return timing


def make_samples(
    model, text: str, ids: list[int], config: SamplingConfig, tokens: list[list[int]], timing: dict
) -> Samples:
    """Samples of `text` (encoded as `ids`) from each sample's new token ids."""
    eos = model.tokenizer.eos_token_id
    out = [
        Sample(model.tokenizer.decode(t), t, config.stop_at_eos and bool(t) and t[-1] == eos) for t in tokens
    ]
    return Samples(out, text, ids, config, timing)


def generate_runs(model, runs: list[tuple], *, batch_size: int = 32) -> list[Samples]:
    """The samples of each run, a (prompt, config, skip set) triple: one Samples per run, in order.

    Runs that share max_new_tokens and stop_at_eos decode together, `batch_size` rows at a time,
    each row leaving out its own run's blocks (a skip set's tokens are those `probes.skip` gives;
    the model's own skips apply to every row). So a study that needs samples at several settings,
    of several prompts, with several skip sets, pays for one decode. A run's timing is its batch's.
    """
    from probes.core.runner import runner_for

    configs = [SamplingConfig.of(c) for _, c, _ in runs]
    skips = [sorted(set(layers)) for *_, layers in runs]
    encoded = [prompt_ids(model, p, bos=c.bos) for (p, _, _), c in zip(runs, configs)]
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault((c.max_new_tokens, c.stop_at_eos), []).append(i)
    runner = runner_for(model)  # fuses the weights, if it will, before the clock starts
    out: list[Samples | None] = [None] * len(runs)
    for members in groups.values():
        rows = [(i, k) for i in members for k in range(configs[i].num_samples)]
        tokens: list[list[int]] = []
        t0 = time.perf_counter()
        for b in range(0, len(rows), batch_size):
            part = rows[b : b + batch_size]
            row_skips = [skips[i] for i, _ in part]
            tokens += sample_rows(
                model,
                [encoded[i][1] for i, _ in part],
                [configs[i] for i, _ in part],
                [k for _, k in part],
                decoder=runner.decoder(row_skips=row_skips if any(row_skips) else None),
            )
        timing = batch_timing(
            tokens, time.perf_counter() - t0, min(batch_size, len(rows)), {"runs": len(members)}
        )
        for i in members:
            text, ids = encoded[i]
            out[i] = make_samples(
                model, text, ids, configs[i], [t for (j, _), t in zip(rows, tokens) if j == i], timing
            )
    return out
