"""The logit lens alongside generation: each generated token's lens, recorded as it is produced.

The rows and units are those of `probes.studies.lens.logit`; the positions are the ones whose logits each
generated token was drawn from, read from the KV-cached decode without re-running the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probes.core.sampling import SamplingConfig
from probes.errors import SpecError
from probes.studies.lens.lenses import UNSET
from probes.studies.lens.logit import LensResult, build_result, round_floats
from probes.tokens import check_top


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
    text: str  # the generated text
    config: SamplingConfig

    @property
    def prompt(self) -> str | None:
        """The prompt's text (the lens's `prompt` is the prompt it continued)."""
        return self.lens.prompt

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 40 else self.text[:39] + "…"
        return (
            f"GenerationLens({len(self.generated)} tokens {text!r}, {self.config.label()}, "
            f"{self.lens.n_rows} rows)"
        )

    @property
    def generated_strings(self) -> list[str]:
        n = len(self.prompt_tokens)
        return self.lens.str_tokens[n : n + len(self.generated)]

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

    def to_html(self, path, *, others=(), force: bool = False):
        """Write the interactive view (one self-contained HTML file): generated tokens across, each one's
        emergence row marked. `others`: the same generation read through other lenses (the same config
        draws the same tokens), switched between in the view. Returns the path written; an existing file
        is replaced only with `force`."""
        from probes.views.lens import lens_page
        from probes.views.page import check_html_path, write_page

        check_html_path(path, force=force, param="path")
        page = lens_page(self.lens, [o.lens for o in others], generation=self)
        return write_page(path, page, force=force)

    def _repr_html_(self) -> str:
        """The interactive view in a notebook cell (a sandboxed iframe)."""
        from probes.views.lens import lens_frame

        return lens_frame(self.lens, generation=self)

    def to_dataframe(self):
        """A pandas DataFrame, one row per (lens row, generated token): the lens's columns (`LensResult.
        to_dataframe`), `step` (which generated token) and `emerges` (whether this row is its emergence
        row). Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = self.lens.records()
        first = {p: j for j, p in enumerate(self.lens.positions)}
        labels = self.lens.row_labels
        for row in rows:
            j = first[row["position"]]
            e = self.emergence[j]
            row["step"] = j
            row["generated"] = row.pop("next_token")
            row["emerges"] = e is not None and labels[e] == row["row"]
        return frame(rows)

    def as_dict(self) -> dict:
        d = self.lens.as_dict()
        d["generation"] = {
            "prompt_tokens": list(self.prompt_tokens),
            "tokens": list(self.generated),
            "str_tokens": self.generated_strings,
            "text": self.text,
            "config": self.config.to_dict(),
            "rank": self.rank.tolist(),
            "prob": round_floats(self.prob),
            "emergence_row": self.emergence,
        }
        return d


def generation_lens(
    model,
    prompt,
    config: SamplingConfig | None = None,
    *,
    top: int = 5,
    lens=None,
    translators=UNSET,
    **overrides,
) -> GenerationLens | list[GenerationLens]:
    """Generate one sample (a SamplingConfig, or its fields as keywords) and record the lens of each token as
    it is produced.

    A list of prompts or a `probes.Dataset` gives a list, one GenerationLens per prompt in order.

    Sampling is exactly `probes.generate`'s (the same config draws the same tokens); `top` is how
    many tokens each lens row lists. The runner's decoder hands over the L+1 residual rows of each
    KV-cached forward (`Runner.decoder(record=)`); the newest position's, whose logits the next
    token is drawn from, are kept, so the sequence is never re-run. Probes attached see the run.
    `lens` (a TunedLens, a lens folder or 'bundled'; None: the logit lens) reads the rows; the
    sampling never sees it.
    """
    from probes.core.decode import sample_rows
    from probes.core.prompt import is_many, per_prompt, prompt_ids
    from probes.core.runner import runner_for
    from probes.studies.lens.tuned import lens_of

    check_top(top)
    lens = lens_of(lens, model, translators)
    cfg = SamplingConfig.of(config, **overrides)
    if cfg.num_samples != 1:
        raise SpecError("the generation lens follows one sample; num_samples must be 1")
    if is_many(prompt):
        return per_prompt(
            lambda p: generation_lens(model, p, cfg, top=top, lens=lens), model, prompt, bos=cfg.bos
        )
    text, prompt_tokens = prompt_ids(model, prompt, bos=cfg.bos)
    calls: list[
        list[torch.Tensor]
    ] = []  # per forward call: the L+1 rows of its newest position, each (d_model,)

    def record(streams):  # the last position is the newest one (also after the window slides)
        calls.append([s[0, -1].clone() for s in streams])

    decoder = runner_for(model).decoder(record=record)
    (gen,) = sample_rows(model, [prompt_tokens], [cfg], [0], decoder=decoder)
    # Call c computed the logits generated token c was drawn from.
    resid = [torch.stack([calls[c][r] for c in range(len(gen))]) for r in range(model.cfg.n_layers + 1)]
    ids = prompt_tokens + gen  # resid: each (generated, d_model)
    cols = [len(prompt_tokens) - 1 + j for j in range(len(gen))]
    result = build_result(model, resid, ids, cols, gen, top, text, lens)
    return GenerationLens(
        lens=result, prompt_tokens=prompt_tokens, generated=gen, text=model.tokenizer.decode(gen), config=cfg
    )
