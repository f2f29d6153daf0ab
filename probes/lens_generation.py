"""The logit lens alongside generation: each generated token's lens, recorded as it is produced.

The rows and units are those of `probes.lens`; the positions are the ones whose logits each
generated token was drawn from, read from the KV-cached decode without re-running the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probes.errors import SpecError
from probes.lens import LensResult, build_result, round_floats, row_hooks


@dataclass
class GenerationLens:
    """The lens of each generated token, recorded while it was generated.

    `lens` covers the positions that predicted the generated tokens (the last prompt position,
    then each generated token but the last), so its "next" arrays are about the generated tokens:
    `rank[row][j]`, `prob[row][j]` of generated token j in each row, and `emergence[j]`, the
    first row from which it stays top-1 (None when it was sampled below the top).
    """

    lens: LensResult
    prompt_tokens: list[int]
    generated: list[int]
    text: str
    settings: dict

    @property
    def generated_strings(self) -> list[str]:
        n = len(self.prompt_tokens)
        return self.lens.str_tokens[n:n + len(self.generated)]

    @property
    def rank(self) -> np.ndarray:
        return self.lens.next_rank  # (rows, generated)

    @property
    def prob(self) -> np.ndarray:
        return self.lens.next_prob  # (rows, generated)

    @property
    def emergence(self) -> list[int | None]:
        return self.lens.emergence("next")

    def figure(self, metric: str = "prob", **kwargs):
        """A matplotlib Figure: generated tokens along x, rows up y, emergence rows marked."""
        from probes.plots.lens import generation_figure

        return generation_figure(self, metric, **kwargs)

    def as_dict(self) -> dict:
        d = self.lens.as_dict()
        d["generation"] = {
            "prompt_tokens": list(self.prompt_tokens),
            "tokens": list(self.generated),
            "str_tokens": self.generated_strings,
            "text": self.text,
            "settings": dict(self.settings),
            "rank": self.rank.tolist(),
            "prob": round_floats(self.prob),
            "emergence_row": self.emergence,
        }
        return d


def generation_lens(
    model,
    prompt,
    max_new_tokens: int = 30,
    *,
    top_k: int = 5,
    temperature: float = 0.8,
    sample_top_k: int | None = 200,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int = 1337,
    bos: bool = True,
    stop_at_eos: bool = False,
) -> GenerationLens:
    """Generate `max_new_tokens` tokens and record the lens of each as it is produced.

    Sampling follows `probes.generate` (`sample_top_k` is its top-k; `top_k` is the lens's).
    Hooks keep the L+1 residual rows of the newest position of each KV-cached forward call, the
    one whose logits the next token is drawn from; the sequence is never re-run.
    """
    from probes.decode import StepInfo
    from probes.generation import generate
    from probes.hooks import attached

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise SpecError(f"top-k must be an integer >= 1, got {top_k}")
    names = row_hooks(model.cfg.n_layers)
    info = StepInfo()
    steps: dict[int, list] = {}  # forward call -> L+1 rows of its newest position, each (d_model,)

    def keep(r):
        def hook(t, hook):
            assert info.fresh >= 1, "a forward call outside decode"
            # The last position is the newest one (also after the window slides).
            steps.setdefault(info.calls, [None] * len(names))[r] = t[0, -1].detach().clone()

        return hook

    with attached(model, [(n, keep(r)) for r, n in enumerate(names)]):
        samples = generate(
            model, prompt, num_samples=1, max_new_tokens=max_new_tokens, temperature=temperature,
            top_k=sample_top_k, top_p=top_p, greedy=greedy, seed=seed, bos=bos, stop_at_eos=stop_at_eos, info=info,
        )
    sample = samples[0]
    prompt_ids, gen = list(samples.prompt_tokens), list(sample.tokens)
    # Call c (1-based) computed the logits generated token c-1 was drawn from; a last call
    # after the final token, if decode made one, predicts nothing we know.
    calls = [steps[c] for c in range(1, len(gen) + 1)]
    resid = [torch.stack([call[r] for call in calls]) for r in range(len(names))]  # each (generated, d_model)
    ids = prompt_ids + gen
    cols = [len(prompt_ids) - 1 + j for j in range(len(gen))]
    lens = build_result(model, resid, ids, cols, gen, top_k, samples.prompt)
    return GenerationLens(lens=lens, prompt_tokens=prompt_ids, generated=gen, text=sample.text, settings=samples.settings)
