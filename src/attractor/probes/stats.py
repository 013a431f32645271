"""Uncertainty and separation statistics shared by the probes and the sweep analysis.

Every interval of the project is a percentile bootstrap made here:

    bootstrap(stat, samples, n, rng)   replicates of ``stat`` with each sample resampled over
                                       its rows, independently (a sample: sequences of one split)
    hierarchical(stat, cells, n, rng)  replicates over training seeds too: seeds resampled, then
                                       the rows of each chosen seed's samples
    interval(point, replicates)        {"mean", "lo", "hi"}: the estimate and its 95% interval
    summarize(values, rng, n)          both, vectorised, for a statistic of one sample
    difference(a, b, rng, n)           mean(a) - mean(b) with its interval

and :func:`auroc` is the Mann-Whitney AUROC (ties count one half).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# stat(array, axis) -> array: reduces ``axis`` (numpy reductions such as np.mean, np.median).
Statistic = Callable[..., np.ndarray]
LEVEL = 0.95


def bootstrap(stat: Callable[..., float], samples: Sequence[np.ndarray], n: int,
              rng: np.random.Generator) -> np.ndarray:
    """(n,) float64 replicates of ``stat(*resampled)``; sample k of shape (N_k, ...) is resampled
    over its N_k rows with replacement, independently of the others."""
    samples = [np.asarray(s) for s in samples]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        drawn = [s[rng.integers(0, len(s), len(s))] for s in samples]
        value = stat(*drawn)
        out[i] = np.nan if value is None else value
    return out


def hierarchical(stat: Callable[..., float], cells: Sequence[Sequence[Sequence[np.ndarray]]],
                 n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, C) replicates of ``stat`` for C columns (e.g. training sizes), over seeds and rows.

    cells[s][c] is the tuple of samples of seed s in column c. A replicate draws S seeds with
    replacement (the same draw for every column, as one seed trains the models of all sizes;
    with one seed, that seed), resamples the rows of each of their samples, and averages
    ``stat(*samples)`` over the drawn seeds. The point estimate is :func:`seed_mean`.
    """
    S, C = len(cells), len(cells[0])
    out = np.empty((n, C), dtype=np.float64)
    for i in range(n):
        seeds = rng.integers(0, S, S) if S > 1 else [0]
        for c in range(C):
            values = [stat(*(a[rng.integers(0, len(a), len(a))] for a in cells[s][c]))
                      for s in seeds]
            out[i, c] = np.nan if any(v is None for v in values) else np.mean(values)
    return out


def seed_mean(stat: Callable[..., float], cells: Sequence[Sequence[Sequence[np.ndarray]]]
              ) -> np.ndarray:
    """(C,) ``stat`` of each seed's samples, averaged over seeds, per column."""
    return np.array([np.mean([stat(*cells[s][c]) for s in range(len(cells))])
                     for c in range(len(cells[0]))], dtype=np.float64)


def interval(point: float | None, replicates: np.ndarray, level: float = LEVEL) -> dict:
    """{"mean": point, "lo", "hi"}: the percentile interval of the finite replicates."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if point is None or not np.isfinite(point) or len(reps) == 0:
        return {"mean": None if point is None or not np.isfinite(point) else float(point),
                "lo": None, "hi": None}
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(reps, [tail, 100.0 - tail])
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def summarize(values: np.ndarray, rng: np.random.Generator, n: int = 1000,
              stat: Statistic = np.mean) -> dict:
    """{"mean", "lo", "hi", "n"}: ``stat`` over rows and its bootstrap interval (vectorised).

    values (N,) or (N, d) (d > 1 for ratio statistics such as :func:`ratio`); rows with a NaN
    anywhere are dropped first (e.g. sequences with no corrupted position).
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values):
        values = values[~np.isnan(values.reshape(len(values), -1)).any(axis=1)]
    if len(values) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    idx = rng.integers(0, len(values), size=(n, len(values)))                # (n, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = float(stat(values, axis=0))
        replicates = np.asarray(stat(values[idx], axis=1), dtype=np.float64)  # (n,)
    return {**interval(point, replicates), "n": len(values)}


def difference(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 1000) -> dict:
    """mean(a) - mean(b) and its interval, resampling a and b independently."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return {"mean": None, "lo": None, "hi": None}
    reps = bootstrap(lambda x, y: x.mean() - y.mean(), [a, b], n, rng)
    return interval(float(a.mean() - b.mean()), reps)


def ratio(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Pooled ratio sum(v[..., 0]) / sum(v[..., 1]) (e.g. recovered tokens / changed tokens)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return values[..., 0].sum(axis) / values[..., 1].sum(axis)


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


def auroc_interval(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator,
                   n: int = 1000) -> dict:
    """AUROC of ``pos`` above ``neg`` with its bootstrap interval (both samples resampled)."""
    return interval(auroc(pos, neg), bootstrap(auroc, [pos, neg], n, rng))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (average ranks for ties); None if undefined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup_x |F_a(x) - F_b(x)|."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())
