"""The dataset lens's result: per lens row, the mean and interval of each metric, and which texts gave
them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from probes.numbers import count

# name -> (what it is, unit); the order of the metric axis in every array.
METRICS = {
    "kl_to_final": ("KL(final || row)", "nats"),
    "entropy": ("entropy", "nats"),
    "next_xent": ("cross-entropy on the next token", "nats"),
    "next_accuracy": ("top-1 accuracy on the next token", "fraction"),
    "final_agreement": ("top-1 agreement with final", "fraction"),
}


@dataclass
class DatasetLens:
    """The logit lens averaged over a dataset: arrays (rows, metrics), metrics in `METRICS` order.

    `mean` pools every position of every text (KL, entropy and agreement over all positions;
    cross-entropy and accuracy over positions whose next token is in the same window). `low` and
    `high` bound a `level` cluster-bootstrap interval that resamples texts. `reference` names the
    distribution called "final": this model's own output row, or, for `compare`, the unpruned
    run's output. `texts` lists where each text came from (`file:line`), in order.
    """

    rows: list[str]  # hook names
    row_labels: list[str]
    mean: np.ndarray  # (rows, metrics)
    low: np.ndarray  # (rows, metrics)
    high: np.ndarray  # (rows, metrics)
    source: str
    texts: list[str]
    n_windows: int
    n_tokens: int  # text tokens, BOS not counted
    n_positions: int  # positions decoded (BOS included)
    n_predicted: int  # positions whose next token is known
    bos: bool
    n_boot: int
    seed: int
    level: float
    reference: str
    model_name: str = ""
    skipped_blocks: list[int] = field(default_factory=list)
    text_sums: np.ndarray | None = field(default=None, repr=False)  # (texts, rows, metrics) per-text sums
    text_counts: np.ndarray | None = field(default=None, repr=False)  # (texts, [positions, predicted])
    compare: DatasetLens | None = None
    tuned_lens: str | None = None  # the tuned lens the rows were read through, None: the logit lens
    # The plot reads the metrics from the result it draws; it does not import this module.
    metrics: ClassVar[dict[str, tuple[str, str]]] = METRICS

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_texts(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        skipped = f", blocks {_ranges(self.skipped_blocks)} skipped" if self.skipped_blocks else ""
        compare = f"; compare: blocks {_ranges(self.compare.skipped_blocks)} skipped" if self.compare else ""
        return (
            f"DatasetLens({count(self.n_rows, 'row')}, {count(self.n_texts, 'text')} "
            f"({count(self.n_windows, 'window')}, {count(self.n_tokens, 'token')}) from {self.source!r}, "
            f"model {self.model_name!r}{skipped}{compare})"
        )

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, low, high) of one metric, each (rows,)."""
        from probes.errors import SpecError, closest

        if name not in METRICS:
            raise SpecError(
                f"unknown metric {name!r}{closest(name, METRICS)}; choose from {', '.join(METRICS)}"
            )
        j = list(METRICS).index(name)
        return self.mean[:, j], self.low[:, j], self.high[:, j]

    def table(self) -> list[dict]:
        """One dict per row: its label, hook, and {metric: (mean, low, high)}."""
        out = []
        for r in range(self.n_rows):
            entry = {"row": self.row_labels[r], "hook": self.rows[r]}
            for j, name in enumerate(METRICS):
                entry[name] = (float(self.mean[r, j]), float(self.low[r, j]), float(self.high[r, j]))
            out.append(entry)
        return out

    def figure(self, **kwargs):
        """A matplotlib Figure: one panel per metric against the row, bands for the intervals."""
        from probes.plots.lens_dataset import dataset_lens_figure

        return dataset_lens_figure(self, **kwargs)

    def to_dataframe(self):
        """A pandas DataFrame, one row per (run, lens row, metric): mean, low, high and unit; with
        `compare_skip`, the skip run's rows too (`run`). Needs pandas (`pip install 'probes[pandas]'`)."""
        from probes.frames import frame, pandas

        pandas()
        rows = []
        for lens in [self] + ([self.compare] if self.compare is not None else []):
            run = f"blocks {_ranges(lens.skipped_blocks)} skipped" if lens.skipped_blocks else "full model"
            for r in range(lens.n_rows):
                for j, (name, (_, unit)) in enumerate(METRICS.items()):
                    rows.append(
                        {
                            "lens": lens.tuned_lens or "logit",
                            "run": run,
                            "row": lens.row_labels[r],
                            "hook": lens.rows[r],
                            "metric": name,
                            "mean": float(lens.mean[r, j]),
                            "low": float(lens.low[r, j]),
                            "high": float(lens.high[r, j]),
                            "unit": unit,
                        }
                    )
        return frame(rows)

    def to_html(self, path, *, others=(), force: bool = False):
        """Write the interactive view: each metric's per-row curve with its interval band, the exact numbers
        on hover, one self-contained HTML file (no network). `others`: the same texts read through other
        lenses (`lens_over(..., lens=[None, tuned])`), overlaid. Returns the path written; an existing file
        is replaced only with `force`."""
        from probes.views.dataset import dataset_page
        from probes.views.page import check_html_path, write_page

        check_html_path(path, force=force, param="path")
        return write_page(path, dataset_page(self, others), force=force)

    def _repr_html_(self) -> str:
        """The interactive view in a notebook cell (a sandboxed iframe)."""
        from probes.views.dataset import dataset_frame

        return dataset_frame(self)

    def as_dict(self) -> dict:
        """JSON-ready: {metric: {mean, low, high}} over the rows, and what the numbers cover."""
        r6 = lambda a: [None if np.isnan(v) else round(float(v), 6) for v in a]
        out = {
            "model": self.model_name,
            "skipped_blocks": list(self.skipped_blocks),
            "tuned_lens": self.tuned_lens,
            "reference": self.reference,
            "dataset": {
                "source": self.source,
                "texts": self.n_texts,
                "windows": self.n_windows,
                "tokens": self.n_tokens,
                "positions": self.n_positions,
                "predicted": self.n_predicted,
                "bos": self.bos,
                "where": list(self.texts),
            },
            "interval": {
                "level": self.level,
                "method": "percentile cluster bootstrap over texts",
                "replicates": self.n_boot,
                "seed": self.seed,
            },
            "rows": list(self.rows),
            "row_labels": list(self.row_labels),
            "units": {name: unit for name, (_, unit) in METRICS.items()},
            "metrics": {
                name: {"mean": r6(self.mean[:, j]), "low": r6(self.low[:, j]), "high": r6(self.high[:, j])}
                for j, name in enumerate(METRICS)
            },
        }
        if self.compare is not None:
            out["compare"] = self.compare.as_dict()
        return out


def _ranges(ps: list[int]) -> str:
    from probes.core.layers import format_layers

    return format_layers(sorted(ps))
