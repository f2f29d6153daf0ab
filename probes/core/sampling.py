"""SamplingConfig: every generation setting in one frozen record, and the only home of their defaults.

    cfg = SamplingConfig(temperature=0.8, top_k=200)     # nanoGPT sample.py's defaults
    probes.generate(model, "ROMEO:", cfg)                # or probes.generate(model, "ROMEO:", top_k=2)

The module imports no torch, so the CLI reads its defaults for `--help` without paying for it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from probes.errors import ProbesError

_MASK64 = (1 << 64) - 1
SEED_RANGE = (-(1 << 63), _MASK64)  # what torch.Generator.manual_seed accepts
# Below this, logits / T overflow float32 (GPT-2's logits reach about 1e3); such a T is greedy anyway.
MIN_TEMPERATURE = 1e-6


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn: temperature, top-k, top-p or greedy, the seed, and how many.

    `temperature` 0 or `greedy=True` is argmax decoding; otherwise it is at least 1e-6. `top_p`
    lies in (0, 1]; the most likely token is always kept. `top_k` None keeps every token (0 is
    read as None, so the CLI's `--top-k 0` means the same). Each sample draws from its own
    generator, seeded from (seed, sample index) by `sample_seed`: sample 0 uses `seed` itself,
    and sample i is the same whether 1 or 100 samples are drawn. `bos` prepends <|endoftext|>
    to the prompt; `stop_at_eos` ends a sample at <|endoftext|>.
    """

    temperature: float = 0.8
    top_k: int | None = 200
    top_p: float | None = None
    greedy: bool = False
    seed: int = 1337
    max_new_tokens: int = 100
    num_samples: int = 1
    stop_at_eos: bool = False
    bos: bool = True

    def __post_init__(self):
        if self.top_k == 0 and not isinstance(self.top_k, bool):
            object.__setattr__(self, "top_k", None)
        t, k, p = self.temperature, self.top_k, self.top_p
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ProbesError(f"temperature must be a finite number >= 0 (0 means greedy), got {t}")
        if 0 < t < MIN_TEMPERATURE:
            raise ProbesError(
                f"temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, got {t:g}: "
                "logits divided by less overflow float32"
            )
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ProbesError(f"top-k must be an integer >= 1 (0 or None: no top-k), got {k}")
        if p is not None and (
            isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0 < p <= 1
        ):
            raise ProbesError(f"top-p must be in (0, 1], got {p}")
        for name in ("max_new_tokens", "num_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ProbesError(f"{name.replace('_', '-')} must be an integer >= 1, got {v!r}")
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, int) or not SEED_RANGE[0] <= s <= SEED_RANGE[1]:
            raise ProbesError(f"seed must be an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}, got {s!r}")
        for name in ("greedy", "stop_at_eos", "bos"):
            if not isinstance(getattr(self, name), bool):
                raise ProbesError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def of(cls, config: SamplingConfig | None = None, **overrides) -> SamplingConfig:
        """`config` (or the defaults) with keyword shortcuts applied; an unknown keyword raises."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ProbesError(
                f"unknown sampling option(s) {', '.join(unknown)}; "
                f"choose from {', '.join(f.name for f in dataclasses.fields(cls))}"
            )
        base = config if config is not None else cls()
        if not isinstance(base, cls):
            raise ProbesError(f"config must be a SamplingConfig, got {type(base).__name__}")
        return dataclasses.replace(base, **overrides) if overrides else base

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0

    def label(self) -> str:
        """Short text for tables and figure titles: 'greedy' or 'T=0.8, top-k=200'."""
        if self.is_greedy:
            return "greedy"
        parts = [f"T={self.temperature:g}"]
        if self.top_k is not None:
            parts.append(f"top-k={self.top_k}")
        if self.top_p is not None:
            parts.append(f"top-p={self.top_p:g}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """Every field, plus `greedy` as it takes effect (temperature 0 is greedy too)."""
        return {**dataclasses.asdict(self), "greedy": self.is_greedy}

    @classmethod
    def from_dict(cls, d: dict) -> SamplingConfig:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def generator(self, sample: int = 0):
        """A CPU torch.Generator for sample `sample`, seeded with `sample_seed(seed, sample)`."""
        import torch

        return torch.Generator().manual_seed(sample_seed(self.seed, sample))


def sample_seed(seed: int, sample: int) -> int:
    """The seed of sample `sample`: `seed` itself for sample 0, a splitmix64 mix of (seed, sample) after.

    Sample 0 keeps the plain seed so one-sample runs reproduce nanoGPT-style seeding; the others
    are decorrelated from it and from each other.
    """
    if sample == 0:
        return seed
    z = (seed + sample * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


# What each study samples with unless told otherwise, derived from the defaults above. Here, not in
# the studies, so the CLI can show them in --help without importing torch.
PRUNE_SAMPLING = SamplingConfig(greedy=True, max_new_tokens=50)  # greedy: runs compare token for token
REPORT_SAMPLING = SamplingConfig(max_new_tokens=60, num_samples=2)
