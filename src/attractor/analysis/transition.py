"""Where does memorisation give way to generalisation? Two estimates, honest about what they
cannot say.

1. Recovery crossing: the smallest training size n* at which train minus test token recovery
   (eq. 12, at a chosen t) falls to at most ``eps``, interpolated linearly in log n between the
   sizes of the grid.
2. Entropy-only estimate (no held-out data): the sequence entropies (eq. 13) of training
   sequences and of generated samples are both ~0 while the model memorises, separate in the
   transition and overlap again once it generalises; the estimate is the size at which their
   two-sample Kolmogorov-Smirnov distance falls back to at most ``ks_level`` after its peak.

Each estimate has a status:

    estimated        a size inside the grid, with an interval
    left_censored    already crossed at the smallest size: n* <= the smallest size
    right_censored   not crossed by the largest size: n* > the largest size
    not_identified   the entropy distributions never separated (the KS distance never exceeded
                     the level), so there is no transition to place

Curves are averages over training seeds of per-seed curves; intervals come from a hierarchical
percentile bootstrap (:func:`attractor.probes.stats.hierarchical`): seeds resampled (when there
are several), then sequences. Each estimate says what its interval covers. Replicates that are
censored count as below / beyond the grid; the fraction of replicates in each status is kept.
Every estimate is also computed over a grid of thresholds, from the same replicates.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

STATUSES = ("estimated", "left_censored", "right_censored", "not_identified")
EPS_GRID = (0.02, 0.03, 0.05, 0.075, 0.1, 0.15)
KS_GRID = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)


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


def crossing(sizes: np.ndarray, values: np.ndarray, level: float,
             after_peak: bool) -> tuple[str, float | None]:
    """(status, size) of the first fall of ``values`` to ``level`` (after its peak, if asked)."""
    if np.isnan(values).any():
        return "not_identified", None
    start = 0
    if after_peak:
        start = int(np.argmax(values))
        if values[start] <= level:
            return "not_identified", None
    elif values[0] <= level:
        return "left_censored", float(sizes[0])
    found = first_crossing(sizes, values, level, start)
    return ("estimated", found) if found is not None else ("right_censored", None)


@dataclass(frozen=True)
class Estimate:
    criterion: str
    threshold: float
    covers: str                  # what the interval resamples: "sequences" or seeds too
    status: str                  # one of STATUSES
    value: float | None          # the size; the smallest size when left-censored
    lo: float | None             # None: at or below the smallest size (lo_censored)
    hi: float | None             # None: beyond the largest size (hi_censored)
    lo_censored: bool
    hi_censored: bool
    replicates: dict             # status -> fraction of bootstrap replicates

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(sizes, point: np.ndarray, replicates: np.ndarray, level: float, after_peak: bool,
             criterion: str, covers: str) -> Estimate:
    """The crossing of ``point`` (C,) and its interval from ``replicates`` (n, C)."""
    sizes = np.asarray(sizes, dtype=float)
    status, value = crossing(sizes, point, level, after_peak)
    reps = [crossing(sizes, r, level, after_peak) for r in replicates]
    fractions = {s: float(np.mean([r[0] == s for r in reps])) for s in STATUSES}
    logs = np.array([math.log(v) if st == "estimated" else -math.inf if st == "left_censored"
                     else math.inf for st, v in reps if st != "not_identified"])
    lo = hi = math.nan
    if len(logs):
        lo, hi = np.percentile(logs, [2.5, 97.5], method="nearest")
    return Estimate(criterion, level, covers, status, value,
                    math.exp(lo) if math.isfinite(lo) else None,
                    math.exp(hi) if math.isfinite(hi) else None,
                    bool(lo == -math.inf), bool(hi == math.inf), fractions)


def recovery_estimates(sizes, point: np.ndarray, replicates: np.ndarray, eps: float,
                       covers: str) -> dict:
    """The recovery crossing at ``eps`` and over EPS_GRID; point and replicates are gap curves."""
    def one(level: float) -> dict:
        return estimate(sizes, point, replicates, level, False,
                        f"train - test recovery <= {level:g} (interpolated in log size)",
                        covers).to_dict()
    return {"default": one(eps), "by_threshold": [one(e) for e in EPS_GRID]}


def entropy_estimates(sizes, point: np.ndarray, replicates: np.ndarray, ks_level: float,
                      covers: str) -> dict:
    """The entropy-only estimate at ``ks_level`` and over KS_GRID; curves are KS distances."""
    def one(level: float) -> dict:
        return estimate(sizes, point, replicates, level, True,
                        f"KS distance of train vs generated sequence entropy falls to <= "
                        f"{level:g} after its peak", covers).to_dict()
    return {"default": one(ks_level), "by_threshold": [one(k) for k in KS_GRID]}


def _log_range(estimates: list[dict]) -> tuple[float, float] | None:
    values = [math.log10(e["value"]) for e in estimates if e["status"] == "estimated"]
    return (min(values), max(values)) if values else None


def agreement(recovery: dict, entropy: dict) -> dict:
    """How far apart the two estimates are: at the default thresholds (decades, and whether the
    intervals overlap) and over the threshold grids (the range of each, in decades)."""
    a, b = recovery["default"], entropy["default"]
    out: dict = {"log10_ratio": None, "intervals_overlap": None}
    if a["status"] == b["status"] == "estimated":
        out["log10_ratio"] = math.log10(b["value"] / a["value"])
        lo_a, lo_b = a["lo"] or 0.0, b["lo"] or 0.0
        hi_a, hi_b = a["hi"] or math.inf, b["hi"] or math.inf
        out["intervals_overlap"] = bool(lo_a <= hi_b and lo_b <= hi_a)
    else:
        out["note"] = f"recovery {a['status']}, entropy-only {b['status']}"
    ra, rb = _log_range(recovery["by_threshold"]), _log_range(entropy["by_threshold"])
    out["recovery_log10_range"], out["entropy_log10_range"] = ra, rb
    if ra and rb:
        out["ranges_overlap"] = bool(ra[0] <= rb[1] and rb[0] <= ra[1])
        out["largest_log10_distance"] = max(abs(ra[1] - rb[0]), abs(rb[1] - ra[0]))
    return out
