"""Next-token distribution: how temperature, top-k and top-p reshape the model's prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from probes.core.draw import entropy_of, mass_count, sampling_probs
from probes.core.prompt import is_many, per_prompt, prompt_ids, str_tokens
from probes.core.sampling import SamplingConfig
from probes.studies.settings import grid_configs
from probes.tokens import check_top

RAW = SamplingConfig(temperature=1.0, top_k=None)  # the model's own distribution: T=1, nothing cut
# A token counts as "possible" at p >= 1e-6: at T=0.1 whether p is 1e-30 or exactly 0 is float
# underflow, not the setting, and a draw of one in a million per step is already out of reach.
POSSIBLE_P = 1e-6


@dataclass
class SettingDistribution:
    """The distribution one sampling config draws from, summarised."""

    config: SamplingConfig
    top_ids: list[int]
    top_str_tokens: list[str]
    top_probs: list[float]
    entropy: float  # nats
    tokens_for_99: int  # how many tokens carry 99% of the mass
    support: int  # tokens with probability >= POSSIBLE_P (1e-6)
    top1_prob: float
    support_min_prob: ClassVar[float] = POSSIBLE_P  # what `support` counts; the plot reads it here

    def as_dict(self) -> dict:
        c = self.config
        return {
            "label": c.label(),
            "temperature": c.temperature,
            "top_k": c.top_k,
            "top_p": c.top_p,
            "greedy": c.is_greedy,
            "top_ids": self.top_ids,
            "top_str_tokens": self.top_str_tokens,
            "top_probs": self.top_probs,
            "entropy": self.entropy,
            "entropy_units": "nats",
            "tokens_for_99": self.tokens_for_99,
            "support": self.support,
            "support_min_prob": self.support_min_prob,
        }


@dataclass
class NextTokenDistribution:
    """For one prompt: the raw distribution (T=1, no truncation) and one entry per sampling setting."""

    prompt: str
    prompt_tokens: list[int]
    raw: SettingDistribution
    settings: list[SettingDistribution] = field(default_factory=list)
    d_vocab: int = 0

    def as_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "prompt_tokens": self.prompt_tokens,
            "d_vocab": self.d_vocab,
            "raw": self.raw.as_dict(),
            "settings": [s.as_dict() for s in self.settings],
        }

    def to_dataframe(self):
        """A pandas DataFrame, one row per (setting, listed token): the raw distribution (`setting` 'raw')
        and each setting's top tokens by rank, with the setting's entropy (nats). Needs pandas
        (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = []
        for name, s in [("raw", self.raw)] + [(s.config.label(), s) for s in self.settings]:
            c = s.config
            for rank, (i, t, p) in enumerate(zip(s.top_ids, s.top_str_tokens, s.top_probs), 1):
                rows.append(
                    {
                        "setting": name,
                        "temperature": c.temperature,
                        "top_k": c.top_k,
                        "top_p": c.top_p,
                        "rank": rank,
                        "token_id": i,
                        "token": t,
                        "prob": p,
                        "entropy": s.entropy,
                        "support": s.support,
                    }
                )
        return frame(rows)

    def figure(self, top: int = 12):
        from probes.plots.next_token import distribution_bars

        return distribution_bars(self, top=top)

    def __repr__(self) -> str:
        labels = ", ".join(s.config.label() for s in self.settings)
        return f"NextTokenDistribution({self.prompt[-30:]!r}: raw + [{labels}])"


def _summarise(model, probs: torch.Tensor, config: SamplingConfig, top: int) -> SettingDistribution:
    p, ids = torch.topk(probs, top)
    keep = max(1, int((p > 0).sum()))  # tokens a setting can never draw are not its "top" tokens
    p, ids = p[:keep], ids[:keep]
    return SettingDistribution(
        config=config,
        top_ids=ids.tolist(),
        top_str_tokens=str_tokens(model, ids.tolist()),
        top_probs=[float(x) for x in p],
        entropy=float(entropy_of(probs)),
        tokens_for_99=mass_count(probs, 0.99),
        support=int((probs >= POSSIBLE_P).sum()),
        top1_prob=float(p[0]),
    )


def next_token_distribution(
    model,
    prompt,
    *,
    temperature: float | list[float] = 1.0,
    top_k: int | None | list[int | None] = None,
    top_p: float | None | list[float | None] = None,
    top: int = 10,
    bos: bool = True,
    settings: list[SamplingConfig] | None = None,
) -> NextTokenDistribution | list[NextTokenDistribution]:
    """The next-token distribution of `prompt` under every combination of the given settings.

    A list of prompts or a `probes.Dataset` gives a list, one NextTokenDistribution per prompt in order.

    Each setting's distribution is exactly what `probes.generate` samples from:
    softmax(logits / T) restricted to the top-k, then the top-p nucleus. `settings`, a list of
    SamplingConfig, replaces the grid when the combinations to show are not a product. `top` is
    how many tokens each setting lists.
    """
    check_top(top)
    grid = settings or grid_configs(temperature, top_k, top_p)  # validates each
    if is_many(prompt):
        return per_prompt(
            lambda p: next_token_distribution(model, p, top=top, bos=bos, settings=grid),
            model,
            prompt,
            bos=bos,
        )
    text, ids = prompt_ids(model, prompt, bos=bos)
    from probes.core.runner import runner_for

    with torch.no_grad():
        ids_t = torch.tensor([ids], device=model.cfg.device or "cpu")
        logits = runner_for(model).logits(ids_t)[0, -1].float().cpu()  # (vocab,)
    top = min(top, logits.shape[-1])
    raw = _summarise(model, torch.softmax(logits, -1), RAW, top)
    return NextTokenDistribution(
        text,
        ids,
        raw,
        [_summarise(model, sampling_probs(logits, s), s, top) for s in grid],
        d_vocab=int(logits.shape[-1]),
    )
