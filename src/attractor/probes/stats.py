"""Uncertainty and separation statistics shared by the probes and the sweep analysis.

bootstrap_ci   percentile bootstrap over sequences (rows of ``values``), seeded
auroc          area under the ROC curve = Mann-Whitney U / (n_pos n_neg), ties count one half
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# stat(array, axis) -> array: reduces ``axis`` (numpy reductions such as np.mean, np.median).
Statistic = Callable[..., np.ndarray]


def bootstrap_ci(values: np.ndarray, stat: Statistic = np.mean, n: int = 1000,
                 generator: np.random.Generator | None = None,
                 level: float = 0.95) -> tuple[float, float, float]:
    """Estimate and percentile interval of ``stat`` under resampling of rows.

    Args:
        values: (N,) or (N, d): one row per sequence (d > 1 for ratio statistics, e.g.
            ``lambda v, axis: v[..., 0].sum(axis) / v[..., 1].sum(axis)``).
        stat: called as ``stat(array, axis=k)``, reducing the row axis k.
        n: number of bootstrap resamples.
        generator: the source of randomness (required when N > 0).
        level: coverage of the interval.
    Returns:
        (estimate on all rows, lower, upper); NaNs when there are no rows.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    assert generator is not None, "bootstrap needs an explicit generator"
    estimate = float(stat(values, axis=0))
    idx = generator.integers(0, len(values), size=(n, len(values)))        # (n, N)
    replicates = np.asarray(stat(values[idx], axis=1), dtype=np.float64)   # (n,)
    if np.isnan(replicates).all():          # e.g. a ratio whose denominator is always 0
        return estimate, float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.nanpercentile(replicates, [tail, 100.0 - tail])
    return estimate, float(lo), float(hi)


def bootstrap_difference(a: np.ndarray, b: np.ndarray, n: int, generator: np.random.Generator,
                         level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its percentile interval, resampling a and b independently."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    ra = a[generator.integers(0, len(a), size=(n, len(a)))].mean(1)
    rb = b[generator.integers(0, len(b), size=(n, len(b)))].mean(1)
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(ra - rb, [tail, 100.0 - tail])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def ratio(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Pooled ratio sum(v[..., 0]) / sum(v[..., 1]) (e.g. recovered tokens / changed tokens)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return values[..., 0].sum(axis) / values[..., 1].sum(axis)


def summarize(values: np.ndarray, generator: np.random.Generator, n: int = 1000,
              stat: Statistic = np.mean) -> dict:
    """{"mean", "lo", "hi", "n"} for JSON: the bootstrap estimate and its 95% interval.

    Rows with a NaN anywhere are dropped first (e.g. sequences with no corrupted position).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values):
        values = values[~np.isnan(values.reshape(len(values), -1)).any(axis=1)]
    est, lo, hi = bootstrap_ci(values, stat, n, generator)
    return {"mean": est, "lo": lo, "hi": hi, "n": len(values)}


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``x`` with tied values sharing the mean of their ranks. (N,) -> (N,)."""
    x = np.asarray(x, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                                 # rank of each value's last copy
    return (last - (counts - 1) / 2.0)[inverse]


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score_pos > score_neg) + P(equal) / 2, from the Mann-Whitney U statistic.

    pos (n1,), neg (n2,) scores; NaN when either is empty.
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = average_ranks(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))
