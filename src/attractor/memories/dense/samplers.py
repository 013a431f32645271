"""Reverse-time samplers of the VE process, for any score function s(x, sigma).

A score function maps (x (B, d), sigma float) to (B, d). Both samplers walk a decreasing noise
grid sigma_0 > ... > sigma_N and finish with one denoising step D(x) = x + sigma_N^2 s(x, sigma_N)
(Tweedie), so the returned points are estimates of clean data rather than noisy iterates.

Per step, with delta_i = sigma_i^2 - sigma_{i+1}^2 (the variance removed):

1. Euler-Maruyama on the reverse SDE:  x <- x + delta_i s(x, sigma_i) + sqrt(delta_i) z.
2. Probability-flow ODE (Euler):      x <- x + delta_i s(x, sigma_i) / 2.

(Song et al., arXiv 2011.13456, eqs. for the VE SDE dx = sqrt(d sigma^2/dt) dw.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from attractor.errors import require

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


def noise_grid(sigma_max: float, sigma_min: float, steps: int) -> torch.Tensor:
    """Geometric grid from sigma_max down to sigma_min: (steps + 1,) float64."""
    require(steps >= 1, f"a sampler needs at least one step, got {steps}")
    require(0 < sigma_min < sigma_max, "need 0 < sigma_min < sigma_max")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return sigma_min * (sigma_max / sigma_min) ** t


def euler_maruyama(score_fn: ScoreFn, x: torch.Tensor, sigmas: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """Reverse SDE from ``x`` (B, d) at sigmas[0] down to sigmas[-1], then denoise: (B, d)."""
    for s_hi, s_lo in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        delta = s_hi**2 - s_lo**2
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = x + delta * score_fn(x, s_hi) + delta**0.5 * z
    return x + sigmas[-1].item() ** 2 * score_fn(x, sigmas[-1].item())


def probability_flow(score_fn: ScoreFn, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Deterministic probability-flow ODE from ``x`` (B, d), then denoise: (B, d)."""
    for s_hi, s_lo in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        x = x + 0.5 * (s_hi**2 - s_lo**2) * score_fn(x, s_hi)
    return x + sigmas[-1].item() ** 2 * score_fn(x, sigmas[-1].item())


SAMPLERS = {"sde": "euler_maruyama", "ode": "probability_flow"}


def sample(score_fn: ScoreFn, n: int, dim: int, sigmas: torch.Tensor, generator: torch.Generator,
           method: str = "sde") -> torch.Tensor:
    """n fresh samples: start from N(0, sigma_0^2 I) and run the named sampler: (n, dim) float64."""
    require(method in SAMPLERS, f"unknown sampler {method!r}; choose one of {sorted(SAMPLERS)}")
    x = sigmas[0].item() * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    if method == "ode":
        return probability_flow(score_fn, x, sigmas)
    return euler_maruyama(score_fn, x, sigmas, generator)
