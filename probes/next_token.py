"""Next-token distribution: how temperature, top-k and top-p reshape the model's prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from probes.prompt import encode, read_prompt, token_strings
from probes.sampling import SamplingSettings, entropy_bits, mass_count, sampling_probs


@dataclass
class SettingDistribution:
    """The distribution one setting samples from, summarised."""

    settings: SamplingSettings
    top_ids: list[int]
    top_tokens: list[str]
    top_probs: list[float]
    entropy_bits: float
    tokens_for_99: int  # how many tokens carry 99% of the mass
    support: int  # tokens with non-zero probability
    top1_prob: float

    def as_dict(self) -> dict:
        return {"label": self.settings.label(), **self.settings.as_dict(), "top_ids": self.top_ids,
                "top_tokens": self.top_tokens, "top_probs": self.top_probs, "entropy_bits": self.entropy_bits,
                "tokens_for_99": self.tokens_for_99, "support": self.support}


@dataclass
class NextTokenReport:
    """For one prompt: the raw distribution (T=1, no truncation) and one entry per setting."""

    prompt: str
    prompt_tokens: list[int]
    raw: SettingDistribution
    settings: list[SettingDistribution] = field(default_factory=list)
    n_vocab: int = 0

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "raw": self.raw.as_dict(),
                "settings": [s.as_dict() for s in self.settings]}

    def figure(self, top: int = 12):
        from probes.plots.next_token import distribution_bars

        return distribution_bars(self, top=top)


def _summarise(model, probs: torch.Tensor, settings: SamplingSettings, top: int) -> SettingDistribution:
    p, ids = torch.topk(probs, top)
    keep = max(1, int((p > 0).sum()))  # tokens a setting can never draw are not its "top" tokens
    p, ids = p[:keep], ids[:keep]
    return SettingDistribution(
        settings=settings, top_ids=ids.tolist(), top_tokens=token_strings(model, ids.tolist()),
        top_probs=[float(x) for x in p], entropy_bits=float(entropy_bits(probs)),
        tokens_for_99=mass_count(probs, 0.99), support=int((probs > 0).sum()), top1_prob=float(p[0]),
    )


def next_token_distribution(
    model,
    prompt: str,
    *,
    temperature: float | list[float] = 1.0,
    top_k: int | None | list[int | None] = None,
    top_p: float | None | list[float | None] = None,
    top: int = 10,
    bos: bool = True,
    settings: list[SamplingSettings] | None = None,
) -> NextTokenReport:
    """The next-token distribution of `prompt` under every combination of the given settings.

    Each setting's distribution is exactly what `probes.generate` samples from:
    softmax(logits / T) restricted to the top-k, then the top-p nucleus. `settings`, a list of
    SamplingSettings, replaces the grid when the combinations to show are not a product.
    """
    temps = temperature if isinstance(temperature, (list, tuple)) else [temperature]
    ks = top_k if isinstance(top_k, (list, tuple)) else [top_k]
    ps = top_p if isinstance(top_p, (list, tuple)) else [top_p]
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        from probes.errors import ProbesError

        raise ProbesError(f"top must be an integer >= 1, got {top}")
    grid = settings or [SamplingSettings(t, k, p) for t in temps for k in ks for p in ps]  # validates each
    text = read_prompt(prompt)
    ids = encode(model, text, bos=bos)
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.cfg.device or "cpu"))[0, -1].float().cpu()  # (vocab,)
    top = min(top, logits.shape[-1])
    raw = _summarise(model, torch.softmax(logits, -1), SamplingSettings(1.0, None, None), top)
    return NextTokenReport(text, ids, raw, [_summarise(model, sampling_probs(logits, s), s, top) for s in grid],
                           n_vocab=int(logits.shape[-1]))
