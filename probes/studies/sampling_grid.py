"""Sampling grids: one prompt generated under every combination of temperatures, top-k and top-p, one model load.

    grid = probes.generate_grid(model, "ROMEO:", temperature=[0.1, 1, 10], top_k=[200, 2])
    grid.runs[0]        # Samples of T=0.1, top-k=200, drawn with the config's seed
    grid.as_dict()      # {"prompt", "prompt_tokens", "grid": [{"config", "samples", "timing"}, ...]}

Each setting is one call of the public `probes.generate` with the same seed, so a setting's samples
are exactly those of a separate run with that setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from probes.core.sampling import SamplingConfig
from probes.studies.checks import sampling_grid


@dataclass
class SamplingGrid:
    """The samples of one prompt under each sampling setting, in grid order (temperature, then top-k, then top-p)."""

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
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens,
                "grid": [{"config": r.config.to_dict(), "samples": [s.as_dict() for s in r], "timing": r.timing}
                         for r in self.runs]}

    def __repr__(self) -> str:
        first = self.runs[0].config
        labels = "; ".join(c.label() for c in self.configs)
        return (f"SamplingGrid({len(self.runs)} settings x {first.num_samples} x {first.max_new_tokens} tokens, "
                f"seed {first.seed}: {labels})")


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
) -> SamplingGrid:
    """Samples of `prompt` under every combination of `temperature`, `top_k` and `top_p` (each a value or a list).

    None (the default) keeps `config`'s value; to list "no top-k" or "no top-p" in a grid, put 0 or
    None in the list. Every other field (seed, samples, tokens, bos) comes from `config` and the
    keyword `overrides`, as in `probes.generate`, so every setting draws with the same seed.
    `on_setting(i, config)` is called before setting i runs, `on_token` as in `probes.generate`.
    Bad values raise before anything is generated; a greedy config takes one setting only.
    """
    from probes.core.generate import generate

    cfg = SamplingConfig.of(config, **overrides)
    grid = sampling_grid(cfg.temperature if temperature is None else temperature,
                         cfg.top_k if top_k is None else top_k,
                         cfg.top_p if top_p is None else top_p, config=cfg)
    runs = []
    for i, setting in enumerate(grid):
        if on_setting is not None:
            on_setting(i, setting)
        runs.append(generate(model, prompt, setting, on_token=on_token))
    return SamplingGrid(runs[0].prompt, runs[0].prompt_tokens, runs)
