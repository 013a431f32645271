"""Zero-temperature retrieval on the denoiser's conditional probabilities (Experiment 1).

The associative-memory update of the paper, s <- sign(J s) (eq. 6), takes the most likely
value of every unit given the others (eqs. 8-9). Its analogue for a UDDM takes the most likely
token of every position under x_theta(z, sigma_t), the denoiser's prediction of the clean
sequence, for all positions at once:

    annealed     z <- argmax_k x_theta(z, sigma_t)[., k] at every t of linspace(t0, t_min,
                 steps + 1): the reverse process with the temperature at zero (steps + 1 calls)
    fixed point  z <- argmax_k x_theta(z, sigma_t)[., k] at one fixed t, repeated synchronously
                 until z stops changing (a fixed point) or returns to an earlier state (a cycle)

Both read x_theta directly. The argmax of the posterior p_theta(z_s | z_t) of eq. (2) is a
different dynamics (``sampler`` with ``dynamics="posterior-argmax"``): its stay term lets a
token move only at steps with alpha_s^2 > alpha_t, so it depends on the grid spacing, not on t.

Notation: denoiser (zt (B, L) int64, sigma (B,)) -> logits (B, L, K); t, t0 (B,) float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attractor import softmax_rows
from attractor.sampler import Denoiser, logits_at, time_grid
from attractor.schedule import sigma_from_alpha

FIXED_POINT, CYCLE, UNFINISHED = 0, 1, 2          # outcomes of the fixed-point dynamics
OUTCOMES = ("fixed_point", "cycle", "max_iterations")


def argmax_step(denoiser: Denoiser, z: torch.Tensor, t: torch.Tensor, schedule,
                free: torch.Tensor | None = None) -> torch.Tensor:
    """One synchronous update z -> argmax_k x_theta(z, sigma_t) at the positions ``free`` (B, L)
    bool (None: all), whose logits alone are asked for; the others keep their ids.
    (B, L) ids, (B,) t -> (B, L)."""
    sigma = sigma_from_alpha(schedule.alpha(t.to(torch.float64))).to(torch.float32)
    at = torch.ones_like(z, dtype=torch.bool) if free is None else free
    return z.masked_scatter(at, softmax_rows.argmax(logits_at(denoiser, z, sigma, at)))


def annealed(denoiser: Denoiser, zt: torch.Tensor, t0: torch.Tensor, schedule, steps: int,
             t_min: float = 1e-5, free: torch.Tensor | None = None) -> torch.Tensor:
    """Annealed zero-temperature retrieval from per-row start times t0 (B,) down to t_min.

    ``free`` (B, L) bool: the positions that may change (None: all); the others keep their ids
    of ``zt``, as the padding of a probed sequence must (a model never trained on pads predicts
    anything there, and changing them changes the context of every other position).
    """
    grid = time_grid(torch.as_tensor(t0, dtype=torch.float64, device=zt.device), steps, t_min)
    z = zt
    for i in range(steps + 1):
        z = argmax_step(denoiser, z, grid[:, i], schedule, free)
    return z


@dataclass(frozen=True)
class FixedPointResult:
    """Where synchronous argmax updates at a fixed t end, for each of B rows."""

    z: torch.Tensor              # (B, L) int64 final state
    iterations: torch.Tensor     # (B,) int64 updates until the state repeated
    outcome: torch.Tensor        # (B,) int64: FIXED_POINT, CYCLE or UNFINISHED
    cycle_length: torch.Tensor   # (B,) int64: 1 at a fixed point, the period of a cycle, 0 else


def fixed_point(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, schedule,
                max_iterations: int = 50, free: torch.Tensor | None = None) -> FixedPointResult:
    """Iterate z <- argmax x_theta(z, sigma_t) until every row repeats a state (or the budget).

    A row whose update equals its current state is at a fixed point; one whose update equals
    an earlier state is on a cycle of that period. Rows that have stopped are not recomputed.
    ``free`` as in :func:`annealed`.
    """
    B = zt.shape[0]
    t = torch.as_tensor(t, dtype=torch.float64, device=zt.device).expand(B)
    history = [zt.clone()]                                       # states 0..i, each (B, L)
    z = zt.clone()
    iterations = torch.full((B,), max_iterations, dtype=torch.long, device=zt.device)
    outcome = torch.full((B,), UNFINISHED, dtype=torch.long, device=zt.device)
    period = torch.zeros(B, dtype=torch.long, device=zt.device)
    active = torch.ones(B, dtype=torch.bool, device=zt.device)
    for i in range(1, max_iterations + 1):
        rows = active.nonzero().squeeze(-1)
        new = argmax_step(denoiser, z[rows], t[rows], schedule,
                          None if free is None else free[rows])              # (n, L)
        z[rows] = new
        for back, earlier in enumerate(reversed(history), start=1):         # newest first
            hit = (new == earlier[rows]).all(-1) & (period[rows] == 0)
            period[rows[hit]] = back
        done = rows[period[rows] > 0]
        iterations[done] = i
        outcome[done] = torch.where(period[done] == 1, FIXED_POINT, CYCLE)
        active[done] = False
        history.append(z.clone())
        if not bool(active.any()):
            break
    return FixedPointResult(z, iterations, outcome, period)
