"""Cluster bootstrap: a percentile interval for a mean over positions, resampling whole texts.

    mean, low, high = cluster_bootstrap(sums, counts, n_boot=1000, seed=0)
    # sums (texts, k): per text, the sum of k statistics over its positions; counts (texts, k): positions

Positions within a text are correlated (a hard passage is hard at every position), so resampling
positions would give intervals that are too narrow. Each replicate draws texts with replacement
and recomputes the ratio sum(sums) / sum(counts), so long texts weigh as much as they do in the
mean. Only the per-text sums are needed, never the positions; replicates are drawn in chunks so
the (replicates, texts) weight matrix stays bounded.
"""

from __future__ import annotations

import warnings

import numpy as np

# Entries of the (replicates, texts) weight matrix held at once.
_CHUNK = 1 << 16


def check_bootstrap(n_boot: int, level: float) -> None:
    """Raise on a replicate count or a confidence level that cannot give an interval."""
    from probes.errors import ProbesError

    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ProbesError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ProbesError(f"level must be in (0, 1), got {level!r}")


def cluster_bootstrap(
    sums: np.ndarray, counts: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high), each (k,): the pooled mean sum(sums) / sum(counts) and its percentile interval.

    `sums` and `counts` are (texts, k); a statistic with no counted position is NaN. With one
    text the interval is the mean itself: one cluster says nothing about the spread.
    """
    check_bootstrap(n_boot, level)
    sums = np.asarray(sums, np.float64)
    counts = np.asarray(counts, np.float64)
    n, k = sums.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums.sum(0) / counts.sum(0)  # (k,)
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, k))
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, n_boot, step):
        c = min(step, n_boot - start)
        draws = rng.integers(0, n, size=(c, n))  # (c, texts): the texts each replicate draws
        # How often each replicate drew each text: a bincount over (replicate, text) pairs.
        weights = np.bincount((draws + n * np.arange(c)[:, None]).ravel(), minlength=c * n).reshape(c, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[start : start + c] = (weights @ sums) / (weights @ counts)  # (c, k)
    alpha = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a statistic never counted: an all-NaN column
        low, high = np.nanquantile(reps, [alpha, 1 - alpha], axis=0)  # (k,) each
    return mean, low, high
