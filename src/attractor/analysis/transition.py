"""Where does memorisation give way to generalisation? Two estimates with bootstrap intervals.

1. Recovery crossing: the training size n* at which train and test token recovery (eq. 12, at a
   chosen noise level t) first come within ``eps`` of each other. Between grid points the gap is
   interpolated linearly in log n.
2. Entropy-only estimate (no held-out data): the training size at which the distributions of
   sequence conditional entropy (eq. 13) of training sequences and of generated samples overlap
   again, i.e. where their two-sample Kolmogorov-Smirnov distance D falls back below ``ks_level``
   after its peak (memorised models: both near 0, D small; in the transition: separated, D large;
   generalised: overlapping again, D small).

Intervals resample sequences within every run (percentile bootstrap); replicates in which the
crossing is not reached inside the grid count as "beyond the largest size".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from attractor.probes.stats import bootstrap, ks_distance


@dataclass(frozen=True)
class Estimate:
    value: float | None          # training size; None: not reached in the grid
    lo: float | None
    hi: float | None             # None: beyond the largest size
    reached_fraction: float      # fraction of bootstrap replicates that cross inside the grid
    criterion: str

    def to_dict(self) -> dict:
        return asdict(self)


def first_crossing(sizes: np.ndarray, values: np.ndarray, level: float,
                   start: int = 0) -> float | None:
    """Smallest size (log-interpolated) at index >= start where ``values`` <= ``level``."""
    for k in range(start, len(sizes)):
        if values[k] <= level:
            if k == start:
                return float(sizes[k])
            x0, x1 = math.log(sizes[k - 1]), math.log(sizes[k])
            frac = (values[k - 1] - level) / (values[k - 1] - values[k])
            return float(math.exp(x0 + frac * (x1 - x0)))
    return None


def _interval(point: float | None, reps: list[float | None], criterion: str) -> Estimate:
    reached = [r for r in reps if r is not None]
    frac = len(reached) / len(reps)
    logs = np.array([math.log(r) if r is not None else math.inf for r in reps])
    lo, hi = np.percentile(logs, [2.5, 97.5], method="nearest")    # logs may hold +inf
    return Estimate(point, math.exp(lo) if math.isfinite(lo) else None,
                    math.exp(hi) if math.isfinite(hi) else None, frac, criterion)


def _replicates(crossing, groups: list[list[np.ndarray]], rng: np.random.Generator,
                n_boot: int) -> list[float | None]:
    """``crossing`` of each bootstrap replicate: every array of every group resampled."""
    flat = [a for g in groups for a in g]
    sizes = [len(g) for g in groups]

    def stat(*drawn):
        parts, k = [], 0
        for n in sizes:
            parts.append(list(drawn[k:k + n]))
            k += n
        value = crossing(*parts)
        return math.inf if value is None else value

    reps = bootstrap(stat, flat, n_boot, rng)
    return [None if not math.isfinite(r) else float(r) for r in reps]


def recovery_crossing(sizes, train: list[np.ndarray], test: list[np.ndarray], eps: float,
                      rng: np.random.Generator, n_boot: int = 1000) -> Estimate:
    """Estimate 1. train/test: per size, per-sequence recovery rates."""
    sizes = np.asarray(sizes, dtype=float)

    def crossing(tr, te):
        gap = np.array([a.mean() - b.mean() for a, b in zip(tr, te)])
        return first_crossing(sizes, gap, eps)

    reps = _replicates(crossing, [train, test], rng, n_boot)
    return _interval(crossing(train, test), reps,
                     f"train - test recovery <= {eps} (interpolated in log size)")


def entropy_overlap(sizes, train: list[np.ndarray], generated: list[np.ndarray],
                    ks_level: float, rng: np.random.Generator, n_boot: int = 1000) -> Estimate:
    """Estimate 2 from sequence entropies of training sequences and generated samples."""
    sizes = np.asarray(sizes, dtype=float)

    def crossing(tr, ge):
        d = np.array([ks_distance(a, b) for a, b in zip(tr, ge)])
        return first_crossing(sizes, d, ks_level, start=int(np.argmax(d)))

    reps = _replicates(crossing, [train, generated], rng, n_boot)
    return _interval(crossing(train, generated), reps,
                     f"KS distance of train vs generated sequence entropy falls to <= {ks_level} "
                     f"after its peak")


def agreement(a: Estimate, b: Estimate) -> dict:
    """How far apart the two estimates are (in decades) and whether their intervals overlap."""
    if a.value is None or b.value is None:
        return {"log10_ratio": None, "intervals_overlap": None,
                "note": "at least one estimate is not reached inside the grid"}
    a_hi, b_hi = a.hi if a.hi is not None else math.inf, b.hi if b.hi is not None else math.inf
    overlap = (a.lo or 0) <= b_hi and (b.lo or 0) <= a_hi
    return {"log10_ratio": math.log10(b.value / a.value), "intervals_overlap": bool(overlap)}
