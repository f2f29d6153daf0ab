"""The dataset-lens view's data: per-row curves of each metric with their intervals, as dataset.js reads them.

Reads what a `DatasetLens` holds (duck-typed: this module imports no study). Each series is one lens
(logit; tuned) of one run (the full model; a `compare_skip` run); its numbers are the result's
`as_dict()` numbers, so the readout on hover shows exactly what the JSON says.
"""

from __future__ import annotations

from probes.errors import SpecError
from probes.views.lens import blocks_text, lens_name, run_name

# Plain-language labels for the switch, the axis and the readout; the result's own `metrics` give the units.
LABELS = {
    "kl_to_final": "KL(final ‖ row)",
    "entropy": "entropy",
    "next_xent": "cross-entropy on the next token",
    "next_accuracy": "top-1 accuracy on the next token",
    "final_agreement": "top-1 agreement with final",
}


def dataset_view(result, others=()) -> dict:
    """The view data of `result` (a DatasetLens) and `others` (the same texts through other lenses)."""
    lenses = [result, *others]
    for other in others:
        if other.rows != result.rows or other.texts != result.texts:
            raise SpecError("others= must be dataset lenses of the same texts and rows as the result")
        if (other.compare is None) != (result.compare is None) or (
            other.compare is not None and other.compare.skipped_blocks != result.compare.skipped_blocks
        ):
            raise SpecError("others= must have the result's compare_skip run too (every lens, both runs)")
    if len({lens_name(lens) for lens in lenses}) < len(lenses):
        raise SpecError(
            "others= must each be read through a different lens (logit, or a tuned lens's folder)"
        )
    series = []
    for lens in lenses:
        series.append(_series(lens, lens_name(lens), run_name(lens)))
        if lens.compare is not None:
            series.append(
                _series(lens.compare, lens_name(lens), run_name(lens.compare) + ", against the full")
            )
    what = "Lens" if others else "Tuned lens" if result.tuned_lens else "Logit lens"
    title = f"{what} over {result.n_texts:,} text{'s' * (result.n_texts != 1)}"
    notes = []
    if result.n_texts < 10:
        notes.append(f"Only {result.n_texts} texts: an interval that resamples texts is rough.")
    return {
        "kind": "dataset",
        "title": f"{title}: {result.model_name}" if result.model_name else title,
        "model": result.model_name,
        "source": result.source,
        "texts": result.n_texts,
        "windows": result.n_windows,
        "tokens": result.n_tokens,
        "level": result.level,
        "replicates": result.n_boot,
        "skipped": blocks_text(result.skipped_blocks),
        "rows": list(result.row_labels),
        "metrics": [
            {"key": key, "label": LABELS.get(key, what), "unit": unit}
            for key, (what, unit) in result.metrics.items()
        ],
        "series": series,
        "notes": notes,
    }


def _series(lens, name: str, run: str) -> dict:
    """One curve per metric: the result's own JSON numbers (mean, low, high per row)."""
    d = lens.as_dict()
    return {
        "lens": name,
        "run": run,
        "name": f"{name}, {run}",
        "skipped": [r for r in range(lens.n_rows) if r > 0 and r - 1 in lens.skipped_blocks],
        "values": d["metrics"],
    }


def dataset_page(result, others=()) -> str:
    """The dataset lens's curves as one self-contained HTML page."""
    from probes.views.page import document

    view = dataset_view(result, others)
    return document(view["title"], view, "dataset.js")


def dataset_frame(result, *, src: str | None = None) -> str:
    """The dataset lens's curves for a notebook cell: the page in a sandboxed iframe (`src`: its file)."""
    from probes.views.page import document, notebook_frame

    view = dataset_view(result)
    page = None if src else document(view["title"], view, "dataset.js")
    return notebook_frame(page, 640, src=src, title=view["title"])
