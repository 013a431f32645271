"""Noise schedules alpha_t of uniform-state diffusion, as small frozen objects.

Notation (paper §2, eq. 1; docs/notation.md §1):
    t        diffusion time in [0, 1]; t = 0 is clean data, t = 1 (almost) uniform noise
    alpha_t  signal level: the probability that a position is NOT resampled; alpha_0 = 1
    dalpha_t d alpha_t / d t  (negative)
    sigma_t  -log alpha_t, what the denoiser is conditioned on

Each schedule is a frozen dataclass with ``alpha(t)``, ``dalpha(t)`` and the inverse
``time_of_alpha(alpha)``; each takes a tensor of any shape and returns one of the same shape and
dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attractor.errors import require


@dataclass(frozen=True)
class LogLinear:
    """alpha_t = 1 - (1 - eps) t, so alpha_1 = eps (Duo's default, eps = 1e-3).

    sigma_t = -log(1 - (1 - eps) t) grows log-linearly near t = 1, hence the name.
    """

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - (1.0 - self.eps) * t

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def time_of_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """The inverse of ``alpha``: t = (1 - alpha_t) / (1 - eps)."""
        return (1.0 - alpha) / (1.0 - self.eps)


@dataclass(frozen=True)
class Cosine:
    """alpha_t = 1 - cos(pi/2 (1 - t')) with t' = (1 - eps) t.

    dalpha_t is the exact derivative with respect to t, including the (1 - eps) factor.
    """

    eps: float = 1e-3

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        tp = (1.0 - self.eps) * t
        return 1.0 - torch.cos(0.5 * math.pi * (1.0 - tp))

    def dalpha(self, t: torch.Tensor) -> torch.Tensor:
        tp = (1.0 - self.eps) * t
        return -0.5 * math.pi * (1.0 - self.eps) * torch.sin(0.5 * math.pi * (1.0 - tp))

    def time_of_alpha(self, alpha: torch.Tensor) -> torch.Tensor:
        """The inverse of ``alpha``: t' = 1 - (2 / pi) acos(1 - alpha_t), t = t' / (1 - eps)."""
        return (1.0 - torch.acos(1.0 - alpha) * 2.0 / math.pi) / (1.0 - self.eps)


SCHEDULES = {"loglinear": LogLinear, "cosine": Cosine}


def get_schedule(name: str, eps: float = 1e-3) -> LogLinear | Cosine:
    """The schedule registered under ``name`` (``loglinear`` or ``cosine``)."""
    require(name in SCHEDULES, f"unknown noise schedule {name!r}; choose from {sorted(SCHEDULES)}")
    require(0.0 < eps < 1.0, f"schedule eps must lie in (0, 1), got {eps}")
    return SCHEDULES[name](eps=eps)


def sigma_from_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """sigma_t = -log alpha_t (docs/notation.md §1), the denoiser's time conditioning."""
    return -torch.log(alpha)
