"""Generation with nanoGPT's sample.py controls, usable inside any probe context."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from probes.decode import StepInfo, decode, decoder_for
from probes.errors import ProbesError
from probes.prompt import encode, read_prompt
from probes.sampling import SamplingSettings, pick_token


@dataclass
class Sample:
    """One continuation: its text (continuation only) and token ids."""

    text: str
    tokens: list[int]
    stopped_at_eos: bool = False

    def as_dict(self) -> dict:
        return {"text": self.text, "tokens": self.tokens, "stopped_at_eos": self.stopped_at_eos}


class Samples(list):
    """A list of Sample, with what was fed, the settings and the timing of the run."""

    prompt: str
    prompt_tokens: list[int]
    settings: dict
    timing: dict


def check_counts(num_samples: int, max_new_tokens: int) -> None:
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ProbesError(f"num-samples must be an integer >= 1, got {num_samples}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ProbesError(f"max-new-tokens must be an integer >= 1, got {max_new_tokens}")


def generate(
    model,
    prompt: str,
    *,
    num_samples: int = 1,
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_k: int | None = 200,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int = 1337,
    bos: bool = True,
    stop_at_eos: bool = False,
    on_token: Callable[[int, int, str], None] | None = None,
    info: StepInfo | None = None,
) -> Samples:
    """Sample `num_samples` continuations of `prompt` (`FILE:path` reads a file).

    The defaults follow nanoGPT (temperature 0.8, top-k 200, seed 1337); temperature 0 or
    `greedy=True` is argmax decoding. One generator seeded with `seed` draws all samples in
    order, so a run reproduces exactly and its samples differ. `on_token(sample, id, text)` is
    called as each token is produced. Works inside `probes.skip(...)` and other probes.
    """
    settings = SamplingSettings(temperature, top_k, top_p, greedy)
    check_counts(num_samples, max_new_tokens)
    text = read_prompt(prompt)
    ids = encode(model, text, bos=bos)
    eos = model.tokenizer.eos_token_id
    stop = frozenset({eos}) if stop_at_eos and eos is not None else frozenset()
    gen = torch.Generator().manual_seed(seed)
    out = Samples()
    # Choosing the decoder fuses the fast path's weights (once per model and weight version); do it
    # before the clock starts, or a model's first run pays for the copy and `prune` shows skipping
    # as far faster than it is.
    decoder_for(model)
    t0 = time.perf_counter()
    n_new = 0
    for k in range(num_samples):
        tokens: list[int] = []
        for token, _ in decode(model, ids, max_new_tokens, lambda lg: pick_token(lg, settings, gen), stop_ids=stop, info=info):
            tokens.append(token)
            if on_token is not None:
                on_token(k, token, model.tokenizer.decode([token]))
        n_new += len(tokens)
        ended = bool(stop) and bool(tokens) and tokens[-1] in stop
        out.append(Sample(model.tokenizer.decode(tokens), tokens, ended))
    seconds = time.perf_counter() - t0
    out.prompt, out.prompt_tokens = text, ids
    out.settings = {**settings.as_dict(), "num_samples": num_samples, "max_new_tokens": max_new_tokens,
                    "seed": seed, "bos": bos, "stop_at_eos": stop_at_eos}
    out.timing = {"new_tokens": n_new, "seconds": round(seconds, 4),
                  "tokens_per_second": round(n_new / seconds, 2) if seconds > 0 else None}
    return out
