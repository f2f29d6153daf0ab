"""Generation with nanoGPT's sample.py controls, usable inside any probe context."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

from probes.core.decode import choose_decoder, decode
from probes.core.distribution import pick_token
from probes.core.prompt import prompt_ids
from probes.core.sampling import SamplingConfig


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
        return f"Sample({text!r}, {len(self.tokens)} tokens{', stopped at EOS' if self.stopped_at_eos else ''})"


class Samples(list):
    """A list of Sample, with the prompt that was fed, the config and the timing of the run."""

    def __init__(self, samples, prompt: str, prompt_tokens: list[int], config: SamplingConfig, timing: dict):
        super().__init__(samples)
        self.prompt, self.prompt_tokens, self.config, self.timing = prompt, prompt_tokens, config, timing

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "config": self.config.to_dict(),
                "samples": [s.as_dict() for s in self], "timing": self.timing}

    def __repr__(self) -> str:
        return f"Samples({len(self)} x {self.config.max_new_tokens} tokens, {self.config.label()}, seed {self.config.seed})"


def stream_tokens(
    model,
    ids: list[int],
    config: SamplingConfig,
    *,
    index: int = 0,
    decoder=None,
    on_forward: Callable[[int, int], None] | None = None,
    feed_last: bool = False,
) -> Iterator[int]:
    """Yield the tokens of sample `index` of `config` continuing `ids` (already encoded), drawn with its own generator.

    The engine's sampling loop; `generate`, `capture(generate=N)` and the generation lens all draw
    through it, so one config gives the same tokens everywhere. `decoder`, `on_forward` and
    `feed_last` go to `probes.core.decode.decode`.
    """
    gen = config.generator(index)
    eos = model.tokenizer.eos_token_id
    stop = frozenset({eos}) if config.stop_at_eos and eos is not None else frozenset()
    pick = lambda logits: pick_token(logits, config, gen)  # noqa: E731
    for token, _ in decode(model, ids, config.max_new_tokens, pick, decoder=decoder, stop_ids=stop,
                           on_forward=on_forward, feed_last=feed_last):
        yield token


def generate(
    model,
    prompt,
    config: SamplingConfig | None = None,
    *,
    on_token: Callable[[int, int, str], None] | None = None,
    **overrides,
) -> Samples:
    """Sample `config.num_samples` continuations of `prompt` (text, `FILE:path`, or token ids).

    `config` is a SamplingConfig (its defaults follow nanoGPT: temperature 0.8, top-k 200, seed
    1337); keyword arguments such as `max_new_tokens=50, greedy=True` override its fields.
    Sample i draws from its own generator seeded from (seed, i), so a run reproduces exactly and
    sample i does not depend on how many samples are drawn. `on_token(sample, id, text)` is
    called as each token is produced. Works inside `probes.skip(...)` and other probes.
    """
    cfg = SamplingConfig.of(config, **overrides)
    text, ids = prompt_ids(model, prompt, bos=cfg.bos)
    # Choosing the decoder fuses the fast path's weights (once per model and weight version); do it
    # before the clock starts, or a model's first run pays for the copy and `prune` shows skipping
    # as far faster than it is.
    decoder = choose_decoder(model)
    out = []
    t0 = time.perf_counter()
    for k in range(cfg.num_samples):
        tokens = []
        for token in stream_tokens(model, ids, cfg, index=k, decoder=decoder):
            tokens.append(token)
            if on_token is not None:
                on_token(k, token, model.tokenizer.decode([token]))
        ended = cfg.stop_at_eos and bool(tokens) and tokens[-1] == model.tokenizer.eos_token_id
        out.append(Sample(model.tokenizer.decode(tokens), tokens, ended))
    seconds = time.perf_counter() - t0
    n_new = sum(len(s.tokens) for s in out)
    timing = {"new_tokens": n_new, "seconds": round(seconds, 4),
              "tokens_per_second": round(n_new / seconds, 2) if seconds > 0 else None}
    return Samples(out, text, ids, cfg, timing)
