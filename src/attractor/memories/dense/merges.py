"""Why a minimum of the exact energy lies off the data: two training points closer than 2 sigma merge.

The two-well calculation. Let a, b be two training points at distance d = ||a - b|| with no other
point nearby, u = (a - b) / d and m = (a + b) / 2. On the line x = m + t (d/2) u the denoiser is
D(x) = m + (d/2) tanh(t d^2 / (4 sigma^2)) u, and off the line it pulls straight back onto it, so
the fixed points x = D(x) are the solutions of

    t = tanh(c t),   c = d^2 / (4 sigma^2).

t = 0 (the midpoint) always solves it. There the responsibilities are 1/2, 1/2, Cov_p(xi) =
(d/2)^2 u u^T, and Hess E(m) = I - c u u^T: eigenvalues 1 (across the pair) and 1 - c (along it).

- d < 2 sigma (c < 1): t = 0 is the only solution and a minimum: the two wells have merged into
  one off-data minimum halfway between the points.
- d > 2 sigma (c > 1): the midpoint is a saddle and the minima sit at t = +-t*, t* = tanh(c t*),
  which tends to the training points (t* -> 1) as d grows.

So the merge gap is exactly ``MERGE_GAP`` = 2 sigma. Other training points perturb it by terms of
order exp(-r^2 / (2 sigma^2)) for a point at distance r, which is small once r exceeds about
3 sigma; a cluster of three or more points within a few sigma is not covered by this argument, and
its off-data minima are counted as unexplained.

Off the data means farther than delta_m from every training point (the same rule as everywhere
in these experiments). Definitions used in the summary rows (:func:`explain`), for one minimum and
the two training points nearest to it, at distance d from each other:

- merged pair: d < ``MERGE_GAP`` sigma: the minimum is the merged well of the pair. It is off the
  data unless the pair is so close that its midpoint lies within delta_m of both points;
- split pair: an off-data minimum with d >= ``MERGE_GAP`` sigma where the two-well minima
  themselves lie farther than delta_m from the points, (1 - t*) d / 2 > delta_m: just above the
  merge gap the pair has split, but its two minima are still near the midpoint;
- unexplained: an off-data minimum that is neither;
- gap: the smallest distance between two training points (the chord on the circle), in sigma;
- resolvable: every gap exceeds ``MERGE_GAP`` sigma, so no pair can merge.
"""

from __future__ import annotations

import math

import torch

MERGE_GAP = 2.0  # in units of sigma: two equal wells closer than this have one minimum


def pair_distances(patterns: torch.Tensor) -> torch.Tensor:
    """Distances of the K(K-1)/2 distinct pairs of training points ``patterns`` (K, d): (P,)."""
    i, j = torch.triu_indices(patterns.shape[0], patterns.shape[0], offset=1)
    dist = torch.cdist(patterns, patterns, compute_mode="donot_use_mm_for_euclid_dist")  # (K, K)
    return dist[i, j]  # never a (P, d) difference tensor: cheap for 1497 64-d digits


def smallest_gap(patterns: torch.Tensor) -> float:
    """The smallest distance between two training points (K, d); +inf for K < 2."""
    dist = pair_distances(patterns)
    return float(dist.min()) if dist.numel() else math.inf


def split_position(c: float) -> float:
    """t* > 0 with t* = tanh(c t*) for c > 1 (bisection), 0 for c <= 1: the two-well minima at +-t*."""
    if c <= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0  # tanh(c t) - t is > 0 just above 0 and < 0 at 1
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.tanh(c * mid) > mid else (lo, mid)
    return 0.5 * (lo + hi)


def nearest_pair_gap(points: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """(M,) distance between the two training points (K, d) nearest to each of ``points`` (M, d).

    +inf for every point when K < 2.
    """
    if patterns.shape[0] < 2:
        return torch.full((points.shape[0],), math.inf, dtype=points.dtype)
    nearest = torch.cdist(points, patterns).topk(2, dim=1, largest=False).indices  # (M, 2)
    return (patterns[nearest[:, 0]] - patterns[nearest[:, 1]]).norm(dim=-1)


def split_offset(gap: float, sigma: float) -> float:
    """Distance of each two-well minimum from its training point, (1 - t*) d / 2, for d = ``gap``."""
    return (1.0 - split_position(gap**2 / (4.0 * sigma**2))) * gap / 2.0


def explain(points: torch.Tensor, memorised: torch.Tensor, lowest: torch.Tensor,
            patterns: torch.Tensor, sigma: float, delta_m: float, gap: float = MERGE_GAP) -> dict:
    """Summary-row fields accounting for every minimum of one training set (module docstring).

    ``points`` (M, d) are the minima, ``memorised`` (M,) bool marks those within ``delta_m`` of a
    training point, ``lowest`` (M,) is the smallest Hessian eigenvalue at each.
    """
    smallest = smallest_gap(patterns)
    pair = nearest_pair_gap(points, patterns)
    merged = pair < gap * sigma
    split = torch.tensor([float(d) >= gap * sigma and split_offset(float(d), sigma) > delta_m
                          for d in pair], dtype=torch.bool)
    off = ~memorised
    return {
        "gap_sigma": smallest / sigma,
        "close_pairs": int((pair_distances(patterns) < gap * sigma).sum()),
        "resolvable": smallest > gap * sigma,
        "only_training_minima": not bool(off.any()),
        "merged_pair_minima": int((merged & off).sum()),
        "merged_memorised_minima": int((merged & memorised).sum()),
        "split_pair_minima": int((split & off).sum()),
        "unexplained_off_data_minima": int((off & ~merged & ~split).sum()),
        "lowest_eig_memorised_min": float(lowest[memorised].min()) if memorised.any() else math.nan,
    }


def summarise_by_k(rows: list[dict]) -> list[dict]:
    """One row per K over the seeds of ``exact`` summary rows (as written by :func:`explain`).

    Fractions are of sets (seeds) whose minima all lie at training points; ``..._resolvable``
    restricts to resolvable sets and is None when a K has none. ``one_minimum_per_point_sets``
    also asks for exactly K minima (no pair merged within delta_m). Counts are summed over sets;
    eigenvalues are the smallest at any training-point minimum.
    """
    out = []
    for k in sorted({r["K"] for r in rows}):
        group = [r for r in rows if r["K"] == k]
        res = [r for r in group if r["resolvable"]]
        out.append({
            "K": k, "sets": len(group),
            "only_training_sets": sum(r["only_training_minima"] for r in group),
            "only_training_fraction": _fraction(group),
            "one_minimum_per_point_sets": sum(r["only_training_minima"] and r["minima"] == k
                                              for r in group),
            "resolvable_sets": len(res),
            "only_training_sets_resolvable": sum(r["only_training_minima"] for r in res),
            "only_training_fraction_resolvable": _fraction(res),
            "gap_sigma_min": min(r["gap_sigma"] for r in group),
            **{key: sum(r[key] for r in group) for key in _COUNTS},
            "unexplained_resolvable": sum(r["unexplained_off_data_minima"] for r in res),
            "lowest_eig_memorised_min": _least(group),
            "lowest_eig_memorised_min_resolvable": _least(res),
            "lowest_eig_memorised_mean": _mean([r["lowest_eig_memorised"] for r in group]),
        })
    return out


_COUNTS = ("close_pairs", "off_data_minima", "merged_pair_minima", "split_pair_minima",
           "unexplained_off_data_minima", "merged_memorised_minima")


def _fraction(rows: list[dict]) -> float | None:
    return sum(r["only_training_minima"] for r in rows) / len(rows) if rows else None


def _least(rows: list[dict]) -> float | None:
    vals = [r["lowest_eig_memorised_min"] for r in rows]
    vals = [v for v in vals if v == v]  # drop NaN
    return min(vals) if vals else None


def _mean(vals: list[float]) -> float | None:
    vals = [v for v in vals if v == v]
    return sum(vals) / len(vals) if vals else None
