"""What is measured on a binary memory: basins, margins, coupling statistics, entropies.

* Basin protocol: flip floor(N f) random bits of a target (start overlap m0 = 1 - 2 f), run the
  zero-temperature dynamics and record the final overlap m. The basin radius is the largest
  flipped fraction f of a grid such that m > 0.95 in at least 90 % of the trials at f and at
  every smaller grid value.
* Margins (eq. 7): kappa^mu_i = xi^mu_i h^mu_i / ||J_i||, compared with Gardner's bound
  kappa_max(alpha), the largest kappa for which couplings with all margins >= kappa exist:
  alpha_c(kappa)^-1 = int_{-kappa}^inf Dt (t + kappa)^2 = (1 + kappa^2) Phi(kappa) + kappa phi(kappa).
* Conditional entropy: per-site H(p(s_i | s_-i)) of eq. (9) at a point, in bits (the binary
  analogue of eq. 13 of arXiv 2604.26841): near 0 where the memory is confident, 1 where it is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from attractor.memories.binary.dynamics import run_dynamics
from attractor.memories.binary.patterns import flip_bits, overlap

RECOVERED_OVERLAP = 0.95
RECOVERED_FRACTION = 0.9


def flip_grid(step: float = 0.025, largest: float = 0.5) -> np.ndarray:
    """Flipped fractions 0, step, 2 step, ... up to ``largest`` (inclusive)."""
    return np.round(np.arange(0.0, largest + 1e-9, step), 6)


def final_overlaps(
    couplings: np.ndarray,
    targets: np.ndarray,
    flip_fraction: float,
    rng: np.random.Generator,
    rule: str = "sync",
    max_steps: int = 30,
) -> np.ndarray:
    """Final overlap with each target after starting from it with floor(N f) flipped bits.

    targets: (B, N) +-1. Returns (B,) float64.
    """
    n_flips = math.floor(targets.shape[1] * flip_fraction + 1e-9)
    starts = flip_bits(targets, n_flips, rng)
    result = run_dynamics(couplings, starts, rule, rng, max_steps)
    return overlap(result.states, targets)


@dataclass(frozen=True)
class BasinCurve:
    """Recovery of targets against the flipped fraction.

    fractions, success (share of trials with m > 0.95), mean_overlap: (G,) arrays over the grid;
    radius: the basin radius (0 if only the unflipped targets are recovered, and also if not even
    they are: ``stable`` tells the two apart); cycles, unsettled: shares of all runs that ended on
    a cycle or had not settled within the step budget.
    """

    fractions: np.ndarray
    success: np.ndarray
    mean_overlap: np.ndarray
    radius: float
    stable: bool
    cycles: float
    unsettled: float


def basin_curve(
    couplings: np.ndarray,
    targets: np.ndarray,
    rng: np.random.Generator,
    n_trials: int = 100,
    fractions: np.ndarray | None = None,
    rule: str = "sync",
    max_steps: int = 30,
) -> BasinCurve:
    """Basin radius of ``targets`` (P, N): n_trials random (target, flips) draws per fraction.

    All fractions are run in one batch of G * n_trials states.
    """
    grid = flip_grid() if fractions is None else np.asarray(fractions, dtype=float)
    picks = rng.integers(0, targets.shape[0], size=(grid.size, n_trials))
    n = targets.shape[1]
    starts = np.concatenate(
        [flip_bits(targets[picks[g]], math.floor(n * f + 1e-9), rng) for g, f in enumerate(grid)]
    )
    result = run_dynamics(couplings, starts, rule, rng, max_steps)
    finals = overlap(result.states, targets[picks.ravel()]).reshape(grid.size, n_trials)
    success = (finals > RECOVERED_OVERLAP).mean(axis=1)
    return BasinCurve(
        fractions=grid,
        success=success,
        mean_overlap=finals.mean(axis=1),
        radius=radius_from_success(grid, success),
        stable=bool(success[0] >= RECOVERED_FRACTION),
        cycles=float(np.mean(result.period >= 2)),
        unsettled=float(np.mean(result.period == 0)),
    )


def radius_from_success(fractions: np.ndarray, success: np.ndarray) -> float:
    """Largest fraction before the first grid value with success below 90 % (0 if none)."""
    failed = np.flatnonzero(success < RECOVERED_FRACTION)
    last_ok = (failed[0] if failed.size else fractions.size) - 1
    return float(fractions[last_ok]) if last_ok >= 0 else 0.0


def margins(couplings: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """kappa^mu_i = xi^mu_i h^mu_i / ||J_i||_2 (eq. 7), shape (P, N) float64.

    A row of J that is all zero has no defined margin; it gets 0. A row that is not finite gets
    NaN (never 0, which would read as a margin).
    """
    j = couplings.astype(np.float64)
    fields = patterns.astype(np.float64) @ j.T
    norms = np.linalg.norm(j, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    kappa = np.where(norms > 0, patterns * fields / safe, 0.0)
    return np.where(np.isfinite(norms), kappa, np.nan)


def gardner_inverse_capacity(kappa: float) -> float:
    """int_{-kappa}^inf Dt (t + kappa)^2 = 1 / alpha_c(kappa), in closed form."""
    phi = math.exp(-0.5 * kappa * kappa) / math.sqrt(2.0 * math.pi)
    big_phi = 0.5 * (1.0 + math.erf(kappa / math.sqrt(2.0)))
    return (1.0 + kappa * kappa) * big_phi + kappa * phi


def gardner_kappa_max(alpha: float, tol: float = 1e-10) -> float:
    """The largest margin achievable at load alpha: solves alpha * I(kappa) = 1 by bisection.

    I(kappa) increases monotonically from 0 to infinity, so the root is unique; kappa_max(2) = 0.
    """
    assert alpha > 0
    lo, hi = -40.0, 40.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if alpha * gardner_inverse_capacity(mid) < 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def coupling_stats(couplings: np.ndarray) -> dict:
    """Frobenius norm of J and its asymmetry ||J - J^T||_F / (2 ||J||_F) (0 symmetric, 1 antisymmetric)."""
    j = couplings.astype(np.float64)
    norm = float(np.linalg.norm(j))
    antisymmetric = float(np.linalg.norm(j - j.T)) / 2.0
    if not np.isfinite(norm):           # NaN couplings have no asymmetry (not 0)
        return {"norm": float("nan"), "asymmetry": float("nan")}
    return {"norm": norm, "asymmetry": antisymmetric / norm if norm > 0 else 0.0}


def conditional_entropy(couplings: np.ndarray, states: np.ndarray, beta: float) -> np.ndarray:
    """Per-site entropy (bits) of p(s_i | s_-i) = sigma(2 beta s_i h_i) at each state.

    states: (B, N) +-1. Returns (B, N) float64 in [0, 1]; it does not depend on s_i itself.
    """
    fields = states.astype(np.float64) @ couplings.astype(np.float64).T
    x = 2.0 * beta * np.abs(fields)
    # H = log(1 + e^-x) + x sigma(-x) nats, written for x >= 0 so nothing overflows.
    e = np.exp(-x)
    nats = np.log1p(e) + x * e / (1.0 + e)
    return nats / math.log(2.0)
