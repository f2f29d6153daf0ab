"""Lenses: how a residual row is turned into a prediction, the logit lens (identity) or a tuned lens.

    LogitLens().transform_rows(model, rows)     # the rows as they are
    tuned.transform_rows(model, rows)           # a TunedLens (probes.studies.lens.tuned): translated

A lens transforms the L+1 residual rows (`transform_rows`) before the runner reads them out
through the final norm and unembedding; the logit lens is the identity (tuned-lens' `LogitLens`
likewise). Studies take `lens=` and never ask which kind they hold; the name a result records is
`lens.name` (None for the logit lens).
"""

from __future__ import annotations

import torch

UNSET = object()  # `translators=` not given (the 0.2 keyword; see tuned.lens_of)


class Lens:
    """The interface: `transform_rows(model, rows)` maps the L+1 rows ((..., d_model)) to what is read."""

    name: str | None = None
    label = "lens"

    def transform_rows(self, model, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError


class LogitLens(Lens):
    """The logit lens: every row read out as it is (nostalgebraist, 2020)."""

    name = None
    label = "logit lens"

    def transform_rows(self, model, rows: list[torch.Tensor]) -> list[torch.Tensor]:
        return rows

    def __repr__(self) -> str:
        return "LogitLens()"

    def __eq__(self, other) -> bool:
        return isinstance(other, LogitLens)

    def __hash__(self) -> int:
        return hash(LogitLens)
