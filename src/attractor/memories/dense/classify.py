"""Memorised, spurious or generalised: what a generated sample is, and how wide a basin is.

Protocol of Pham et al. (arXiv 2505.21777; docs/dense.md), with thresholds expressed in the
unit s = median nearest-neighbour distance within the training set, so that one setting
means the same thing for every training size K:

- memorised:   d(x, training set) <= delta_m = c_m * s;
- spurious:    not memorised, and at least ``min_shared`` *other* samples lie within
               delta_s = c_s * s: independent generations landing on one novel point reveal an
               off-data attractor with a basin of its own;
- generalised: neither.

In low dimension independent samples also fall close together by chance; :func:`classify`
applied to fresh draws from the data distribution (``chance`` in the experiments) measures how
often that alone would be called spurious.

Basin size is the critical noise level (the "critical time" of Pham et al.): noise a point to
sigma_c, run the sampler back down, and call it recovered if it lands within delta_m of where it
started; the basin size is the largest sigma_c on a grid recovered in at least ``success`` of
the trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attractor.config import check, setting
from attractor.memories.dense.data import median_spacing, nearest_neighbour_distances

MEMORISED, SPURIOUS, GENERALISED = 0, 1, 2
LABELS = ("memorised", "spurious", "generalised")


@dataclass(frozen=True)
class Thresholds:
    """Relative thresholds: delta_m = memorised * spacing, delta_s = spurious * spacing."""

    memorised: float = setting(1.0 / 3.0, help="delta_m, the memorised radius, in units of the "
                               "training set's median nearest-neighbour spacing")
    spurious: float = setting(1.0 / 3.0, help="delta_s, the radius of a shared novel point, in "
                              "units of the same spacing")
    min_shared: int = setting(3, help="other samples within delta_s that make a novel sample "
                              "spurious")

    def __post_init__(self) -> None:
        check(self.memorised > 0, "memorised", f"must be > 0; got {self.memorised}")
        check(self.spurious > 0, "spurious", f"must be > 0; got {self.spurious}")
        check(self.min_shared >= 1, "min_shared", f"must be >= 1; got {self.min_shared}")

    def absolute(self, patterns: torch.Tensor) -> dict[str, float]:
        """The spacing s of ``patterns`` (K, d) and the absolute delta_m, delta_s from it."""
        s = median_spacing(patterns)
        return {"spacing": s, "delta_m": self.memorised * s, "delta_s": self.spurious * s}


def classify(samples: torch.Tensor, patterns: torch.Tensor, thresholds: Thresholds) -> torch.Tensor:
    """Labels (B,) int64 in {MEMORISED, SPURIOUS, GENERALISED} for ``samples`` (B, d)."""
    delta = thresholds.absolute(patterns)
    to_train = nearest_neighbour_distances(samples, patterns)
    to_others = nearest_neighbour_distances(samples, None, k=thresholds.min_shared)
    labels = torch.full((samples.shape[0],), GENERALISED, dtype=torch.long)
    labels[to_others <= delta["delta_s"]] = SPURIOUS
    labels[to_train <= delta["delta_m"]] = MEMORISED
    return labels


def fractions(labels: torch.Tensor) -> dict[str, float]:
    """Share of each class among ``labels``."""
    n = max(labels.numel(), 1)
    return {name: float((labels == i).sum()) / n for i, name in enumerate(LABELS)}


def spurious_centres(samples: torch.Tensor, labels: torch.Tensor, radius: float) -> torch.Tensor:
    """Representative points (M, d) of the spurious samples, merged within ``radius``."""
    from attractor.memories.dense.energy import deduplicate

    spur = samples[labels == SPURIOUS]
    if spur.shape[0] == 0:
        return spur
    centres, groups = deduplicate(spur, radius)
    return centres[torch.bincount(groups) >= 2] if centres.shape[0] > 1 else centres


Restore = Callable[[torch.Tensor, float], torch.Tensor]


def critical_noise(restore: Restore, points: torch.Tensor, sigma_grid: torch.Tensor,
                   radius: float, generator: torch.Generator, trials: int = 10,
                   success: float = 0.9) -> torch.Tensor:
    """Basin size of each of ``points`` (M, d): the largest sigma_c recovered often enough.

    ``restore(x, sigma_c)`` runs the reverse process from noise level sigma_c to the end and
    returns clean estimates (B, d). Returns (M,) float64, 0 where no grid level succeeds.
    """
    m = points.shape[0]
    best = torch.zeros(m, dtype=torch.float64)
    for sigma_c in sigma_grid.tolist():
        start = points.repeat_interleave(trials, 0)  # (M * trials, d)
        noisy = start + sigma_c * torch.randn(start.shape, generator=generator, dtype=start.dtype)
        back = restore(noisy, sigma_c)
        ok = ((back - start).norm(dim=-1) <= radius).double().view(m, trials).mean(1)
        best = torch.where(ok >= success, best.clamp_min(sigma_c), best)
    return best
