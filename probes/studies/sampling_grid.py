"""Sampling grids: one prompt generated under every combination of temperatures, top-k and top-p, one model
load.

    grid = probes.generate_grid(model, "ROMEO:", temperature=[0.1, 1, 10], top_k=[200, 2])
    grid.runs[0]        # Samples of T=0.1, top-k=200, drawn with the config's seed
    grid.as_dict()      # {"prompt", "prompt_tokens", "grid": [{"config", "samples", "timing"}, ...]}

Every setting is decoded in one batch by `probes.generate` (a list of configs), each sample with its
own generator from the same seed, so a setting's samples are those of a separate run with that setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from probes.core.sampling import SamplingConfig
from probes.studies.settings import grid_configs


@dataclass
class SamplingGrid:
    """The samples of one prompt under each sampling setting, in grid order (temperature, then top-k, then
    top-p)."""

    prompt: str
    prompt_tokens: list[int]
    runs: list  # one probes.Samples per setting

    @property
    def configs(self) -> list[SamplingConfig]:
        return [r.config for r in self.runs]

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)

    def as_dict(self) -> dict:
        shared = self.shared_timing
        grid = [
            {"config": r.config.to_dict(), "samples": [s.as_dict() for s in r]}
            | ({} if shared else {"timing": r.timing})
            for r in self.runs
        ]
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "grid": grid} | (
            {"timing": shared} if shared else {}
        )

    def to_dataframe(self):
        """A pandas DataFrame, one row per (setting, sample).

        Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        return frame([row for r in self.runs for row in r.records()])

    @property
    def shared_timing(self) -> dict | None:
        """The one timing of all settings when they were decoded together (a batch), else None."""
        first = self.runs[0].timing
        return first if len(self.runs) > 1 and all(r.timing is first for r in self.runs) else None

    def __repr__(self) -> str:
        first = self.runs[0].config
        labels = "; ".join(c.label() for c in self.configs)
        return (
            f"SamplingGrid({len(self.runs)} settings x {first.num_samples} x {first.max_new_tokens} tokens, "
            f"seed {first.seed}: {labels})"
        )


def generate_grid(
    model,
    prompt,
    config: SamplingConfig | None = None,
    *,
    temperature=None,
    top_k=None,
    top_p=None,
    on_setting: Callable[[int, SamplingConfig], None] | None = None,
    on_token: Callable[[int, int, str], None] | None = None,
    **overrides,
) -> SamplingGrid | list[SamplingGrid]:
    """Samples of `prompt` under every combination of `temperature`, `top_k` and `top_p` (each a value or a
    list).

    None (the default) keeps `config`'s value; to list "no top-k" or "no top-p" in a grid, put 0 or
    None in the list. Every other field (seed, samples, tokens, bos) comes from `config` and the
    keyword `overrides`, as in `probes.generate`, so every setting draws with the same seed.
    `on_setting(i, config)` is called before setting i runs, `on_token` as in `probes.generate`.
    Bad values raise before anything is generated; a greedy config takes one setting only.

    A list of prompts or a `probes.Dataset` gives a list, one SamplingGrid per prompt in order; every
    prompt and setting is decoded in one batch (streaming with `on_setting`/`on_token`: one prompt
    after another, each calling `on_setting` from 0).
    """
    from probes.core.generate import generate
    from probes.core.prompt import is_many, per_prompt

    cfg = SamplingConfig.of(config, **overrides)
    grid = grid_configs(
        cfg.temperature if temperature is None else temperature,
        cfg.top_k if top_k is None else top_k,
        cfg.top_p if top_p is None else top_p,
        config=cfg,
    )
    if is_many(prompt):
        if on_setting is None and on_token is None:
            # (prompts, settings) Samples, all in one batch
            return [
                SamplingGrid(r[0].prompt, r[0].prompt_tokens, r) for r in generate(model, prompt, list(grid))
            ]
        return per_prompt(lambda p: _grid(model, p, grid, on_setting, on_token), model, prompt, bos=cfg.bos)
    return _grid(model, prompt, grid, on_setting, on_token)


def _grid(model, prompt, grid: list[SamplingConfig], on_setting, on_token) -> SamplingGrid:
    """The grid of one prompt."""
    from probes.core.generate import generate

    if on_setting is None and on_token is None:
        runs = generate(model, prompt, list(grid))  # every setting's samples in one batch
    else:  # streaming: one setting, and one sample, at a time, so the text reads in order
        runs = []
        for i, setting in enumerate(grid):
            if on_setting is not None:
                on_setting(i, setting)
            runs.append(generate(model, prompt, setting, on_token=on_token, batch_size=1))
    return SamplingGrid(runs[0].prompt, runs[0].prompt_tokens, runs)
