"""The settings of the retrieval experiments 1 and 2: how to corrupt, where the reverse process
starts, and which dynamics retrieve (paper Appendix A; :mod:`attractor.probes.recovery` runs
them).

Experiment 1 (:class:`DeterministicConfig`, Fig. 1): exactly n = max(1, round(f * real tokens))
positions are changed for each fraction f of a grid, and zero-temperature dynamics run from a
FIXED diffusion time t (default 0.25):

    annealed          (default) argmax x_theta at every step from t to t_min
    fixed-point       argmax x_theta at t, repeated until a fixed point or a cycle
    posterior-argmax  the argmax of p_theta(z_s | z_t), eq. (2): a control that reproduces a
                      literal reading of Appendix A; what it retrieves depends on the grid
                      spacing, not on t (:mod:`attractor.sampler`)

Experiment 2 (:class:`StochasticConfig`, Figs. 2-3): z_t ~ q(z_t | x) of eq. (1) for each t of a
grid and the ancestral reverse process from that same t.

Each config answers ``corrupt``, ``start_times`` and ``retrieve`` for the shared core, through
the model's noise family (:mod:`attractor.families`: for a masked model, corrupting means
masking, and both experiments unmask: ancestrally, or by confidence at zero temperature). Both
experiments corrupt and change real tokens only: the padding of a sequence is its fixed
context, never corrupted, changed or scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from attractor.config import check, setting
from attractor.probes import common
from attractor.sampler import SamplerConfig

SAMPLER_T_MIN = SamplerConfig().t_min
DETERMINISTIC_DYNAMICS = ("annealed", "fixed-point", "posterior-argmax")


def _check_shared(cfg) -> None:
    check(cfg.num_sequences >= 1, "num_sequences", "must be at least 1")
    check(cfg.reverse_steps >= 1, "reverse_steps", "must be at least 1")
    check(cfg.examples >= 0, "examples", "must be >= 0")


@dataclass(frozen=True)
class DeterministicConfig:
    """Experiment 1: corrupt exactly a fraction of the tokens, retrieve at zero temperature."""

    LEVEL: ClassVar[str] = "fraction"

    fractions: tuple[float, ...] = setting((0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
                                           help="corrupted fractions of the real tokens")
    t: float = setting(0.25, help="the diffusion time the retrieval starts from (fixed-point: "
                       "the time it stays at)")
    dynamics: str = setting("annealed", help="annealed (argmax x_theta from t down to t_min) | "
                            "fixed-point (argmax x_theta at t until it repeats) | "
                            "posterior-argmax (argmax of eq. 2: depends on the grid spacing)")
    num_sequences: int = setting(64, help="training and test sequences each, at most")
    reverse_steps: int = setting(100, help="steps of the reverse process")
    max_iterations: int = setting(50, help="fixed-point dynamics: most updates per sequence")
    examples: int = setting(3, help="sequences per split kept as examples for the report")
    unigram_baseline: bool = setting(True, help="also run the same dynamics with a unigram "
                                     "denoiser (the training tokens' frequencies)")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.fractions, "fractions")
        common.check_times((self.t,), "t")
        check(self.t > SAMPLER_T_MIN, "t", f"must exceed the sampler's t_min {SAMPLER_T_MIN}")
        check(self.dynamics in DETERMINISTIC_DYNAMICS, "dynamics",
              f"is {self.dynamics!r}, not one of {', '.join(DETERMINISTIC_DYNAMICS)}")
        check(self.max_iterations >= 1, "max_iterations", "must be at least 1")
        _check_shared(self)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.fractions

    def corrupt(self, ops, x0, mask, levels, generator) -> torch.Tensor:
        """x0, mask (R, L), levels (R,) fractions -> z_t (R, L) with exactly n changed tokens."""
        n = torch.floor(levels * mask.sum(-1).to(torch.float64) + 0.5).clamp_min(1).long()
        return ops.corrupt_exactly(x0, n, generator, mask)

    def start_times(self, levels: torch.Tensor) -> torch.Tensor:
        return torch.full_like(levels, self.t)

    def retrieve(self, ops, denoiser, zt, t0, generator, free, targets) -> tuple:
        """x_hat (R, L), changing only ``free`` positions, and, for the fixed-point dynamics,
        per-row iterations and outcome (:mod:`attractor.families`)."""
        return ops.retrieve(self.dynamics, denoiser, zt, t0, generator, free, self, targets)


@dataclass(frozen=True)
class StochasticConfig:
    """Experiment 2: corrupt by eq. (1) at t, the ancestral reverse process from that t."""

    LEVEL: ClassVar[str] = "t"

    times: tuple[float, ...] = setting((0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
                                       help="noise levels t of the corruption and the start")
    num_sequences: int = setting(64, help="training and test sequences each, at most")
    reverse_steps: int = setting(100, help="steps of the reverse process")
    examples: int = setting(3, help="sequences per split kept as examples for the report")
    unigram_baseline: bool = setting(True, help="also run the same dynamics with a unigram "
                                     "denoiser (the training tokens' frequencies)")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.times, "times")
        check(min(self.times) > SAMPLER_T_MIN, "times",
              f"must exceed the sampler's t_min {SAMPLER_T_MIN}")
        _check_shared(self)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.times

    def corrupt(self, ops, x0, mask, levels, generator) -> torch.Tensor:
        """x0, mask (R, L), levels (R,) times -> z_t ~ q(z_t | x0) (R, L); pads stay."""
        return ops.forward(x0, levels, generator, mask)

    def start_times(self, levels: torch.Tensor) -> torch.Tensor:
        return levels

    def retrieve(self, ops, denoiser, zt, t0, generator, free, targets) -> tuple:
        return ops.retrieve("stochastic", denoiser, zt, t0, generator, free, self, targets)
