"""Results as pandas DataFrames (`to_dataframe()`): the one place pandas is imported, an optional extra.

Each result builds its rows as plain dicts (one per layer and position, per sample, per run...); this
module turns them into a DataFrame, and says in one line how to install pandas when it is missing.
"""

from __future__ import annotations

from probes.errors import ProbesError

EXTRA = "pip install 'probes[pandas]'"


def pandas():
    """The pandas module, or a ProbesError that names the extra to install."""
    try:
        import pandas
    except ImportError:
        raise ProbesError(f"to_dataframe() needs pandas, an optional extra: {EXTRA}") from None
    return pandas


def frame(rows: list[dict], columns: list[str] | None = None):
    """A DataFrame of `rows` (dicts with the same keys), columns in `columns` order (else the first row's)."""
    pd = pandas()
    return pd.DataFrame.from_records(
        rows, columns=columns if columns is not None else list(rows[0]) if rows else None
    )
