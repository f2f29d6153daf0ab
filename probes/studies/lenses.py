"""Lenses: how a residual row is turned into a prediction, the logit lens (identity) or a tuned lens.

    lens_of(None, model)          # LogitLens(): every row read as it is
    lens_of("bundled", model)     # the bundled model's TunedLens (a folder loads the same way)

A lens transforms the L+1 residual rows (`transform_rows`) before the runner reads them out
through the final norm and unembedding; the logit lens is the identity (tuned-lens' `LogitLens`
likewise). Studies take `lens=` and never ask which kind they hold; the name a result records is
`lens.name` (None for the logit lens).
"""

from __future__ import annotations

import warnings

import torch

UNSET = object()


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


def lens_of(lens, model, translators=UNSET) -> Lens:
    """`lens=` as studies take it: None (the logit lens), a Lens, or a tuned lens folder / 'bundled' to load.

    `translators=`, the 0.2 keyword for a tuned lens, still works for this release with a warning.
    """
    if translators is not UNSET:
        warnings.warn(
            "translators= is deprecated and will be removed in 0.4; pass the tuned lens as lens=",
            DeprecationWarning,
            stacklevel=3,
        )
        if lens is None:
            lens = translators
    if lens is None:
        return LogitLens()
    if isinstance(lens, Lens):
        return lens
    from probes.studies.tuned_lens import load_tuned_lens

    return load_tuned_lens(lens, model)
