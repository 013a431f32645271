"""The reverse process of uniform-state diffusion, eq. (2): ancestral and posterior-argmax.

Notation (paper §2 and Appendix A; docs/notation.md §6):
    denoiser  callable (zt (B, L) int64, sigma (B,) float32) -> logits (B, L, K); softmax = x_theta
    zt        (B, L) int64 current ids at time t
    t0        (B,) float64 start time of each row (rows may start at different times)
    t_min     last time of the grid (Duo: 1e-5), followed by the optional final step
    alpha_t   schedule.alpha(t), the signal level; sigma_t = -log alpha_t conditions the denoiser

Each row runs on its own grid ``linspace(t0[b], t_min, steps + 1)``, so a whole grid of noise
levels is ONE batched reverse process. A step t -> s draws z_s from the model posterior
p_theta(z_s | z_t) of eq. (2), in its exact mixture form (float64 weights,
:func:`attractor.posterior.posterior_mixture`), so no (B, L, K) float64 tensor is formed:

    ancestral          z_s ~ Cat(p_theta(z_s | z_t))                  (the generative process)
    posterior-argmax   z_s = argmax p_theta(z_s | z_t)                (a literal reading of the
                                                                       paper's Appendix A)

then, from t_min, the final step (Duo's ``noise_removal``):

    ancestral   one more posterior step to alpha_s = 1 (its argmax under posterior-argmax)
    greedy      argmax x_theta(z_{t_min})
    none        stop at t_min

The posterior argmax is "sticky": the z_t entry of the posterior numerator is at least
a_{t|s} - a_t while any other entry k gets (a_s - a_t) x_theta[k] + (1 - a_{t|s})(1 - a_s)/K, so a
token can only change at a step with a_s^2 > a_t. For the log-linear schedule (eps -> 0) that is
t > 2 s - s^2: on a linear grid of spacing Delta down to t_min, the last step (Delta + t_min ->
t_min) and, when Delta > sqrt(t_min) (50 steps from t = 0.25: Delta = 5e-3), the one before; the
final step to alpha_s = 1, where the posterior is x_theta ⊙ (K a_t z_t + (1 - a_t) 1), keeps z_t
unless x_theta[z_t] < ~t_min x_theta[k] / K. So what this dynamics retrieves is decided by the
last one or two steps and depends on Delta, not on the start time. Zero-temperature retrieval
that reads x_theta at every step is :mod:`attractor.retrieval`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attractor import streams
from attractor.config import check
from attractor.forward import prior_sample
from attractor.posterior import posterior_mixture
from attractor.schedule import sigma_from_alpha
from attractor.softmax_rows import argmax, log_normalizer, row_stats, sample

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def logits_at(denoiser: Denoiser, zt: torch.Tensor, sigma: torch.Tensor,
              at: torch.Tensor) -> torch.Tensor:
    """The (n, K) logits of the positions ``at`` (B, L) bool, in row-major order (n = at.sum()).

    A denoiser with ``takes_rows`` (``Run.denoiser``) is asked for those rows only, so that a DiT
    runs its output layer on them alone; any other is called whole and its rows selected."""
    if getattr(denoiser, "takes_rows", False):
        return denoiser(zt, sigma, rows=at)
    logits = denoiser(zt, sigma)
    return logits.reshape(-1, logits.shape[-1]) if bool(at.all()) else logits[at]


DYNAMICS = ("ancestral", "posterior-argmax")
FINAL_STEPS = ("ancestral", "greedy", "none")


@dataclass(frozen=True)
class SamplerConfig:
    """How to run the reverse process: grid size, last time, dynamics and final step."""

    steps: int = 100
    t_min: float = 1e-5
    dynamics: str = "ancestral"
    final: str = "ancestral"

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", f"must be at least 1, got {self.steps}")
        check(0.0 < self.t_min < 1.0, "t_min", f"must lie in (0, 1), got {self.t_min}")
        check(self.dynamics in DYNAMICS, "dynamics",
              f"is {self.dynamics!r}, not one of {', '.join(DYNAMICS)}")
        check(self.final in FINAL_STEPS, "final",
              f"is {self.final!r}, not one of {', '.join(FINAL_STEPS)}")


def time_grid(t0: torch.Tensor, steps: int, t_min: float) -> torch.Tensor:
    """Per-row grids: (B,) start times -> (B, steps + 1) float64, row b = linspace(t0[b], t_min)."""
    t0 = torch.as_tensor(t0, dtype=torch.float64)
    frac = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64, device=t0.device)
    return t0[:, None] + (t_min - t0[:, None]) * frac[None, :]             # (B, steps + 1)


def _logits(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, schedule) -> torch.Tensor:
    """Denoiser logits at (z_t, sigma_t), (B, L, K) float32 or bf16: the only K-wide tensor of a
    step."""
    sigma = sigma_from_alpha(schedule.alpha(t.to(torch.float64))).to(torch.float32)
    return denoiser(zt, sigma)


def posterior_step(logits: torch.Tensor, zt: torch.Tensor, alpha_t: torch.Tensor,
                   alpha_s: torch.Tensor | float, generator: torch.Generator,
                   greedy: bool = False) -> torch.Tensor:
    """Draw z_s ~ p_theta(z_s | z_t) of eq. (2), or take its argmax, from the denoiser's logits.

    Uses the exact mixture form of :func:`attractor.posterior.posterior_mixture` (weights in
    float64): stay at z_t, jump to a uniform id, or draw from x_theta = softmax(logits). A step
    costs one chunked pass over the logits (:mod:`attractor.softmax_rows`: log Z, x_theta[z_t] and,
    for the argmax, the best other id) plus work on the few rows that need their K logits again:
    those whose draw falls on the x_theta component, or whose argmax leaves z_t. The argmax
    compares the z_t entry, w_stay + w_x x[z_t], with the best other entry, w_x max_{k != z_t}
    x[k] (the uniform part adds w_u / K to both); ties go to z_t.
    logits (B, L, K) any float dtype, zt (B, L) int64 -> (B, L) int64.
    """
    K = logits.shape[-1]
    if greedy:
        stats = row_stats(logits, zt)
        x_at_z = stats.prob_at_index()
        w_x, _, w_stay = posterior_mixture(x_at_z, alpha_t, alpha_s, K)
        leave = w_stay + w_x * x_at_z < w_x * stats.prob_best_other()       # (B, L) bool
        out = zt.clone()
        if bool(leave.any()):
            rows = logits[leave].float()                                   # (n, K), n << B L
            rows.scatter_(-1, zt[leave].unsqueeze(-1), float("-inf"))
            out[leave] = rows.argmax(dim=-1)
        return out
    log_z = log_normalizer(logits)                                         # (B, L) float64
    x_at_z = (logits.gather(-1, zt.unsqueeze(-1)).squeeze(-1).double() - log_z).exp()
    w_x, w_u, w_stay = posterior_mixture(x_at_z, alpha_t, alpha_s, K)
    u = streams.uniform(generator, zt.shape, zt.device, torch.float64)
    jump = streams.integers(generator, 0, K, zt.shape, zt.device)
    u_token = streams.uniform(generator, zt.shape, zt.device, torch.float64)   # every row draws
    out = torch.where(u < w_stay, zt, jump)
    from_x = u >= w_stay + w_u                                             # (B, L) bool
    if bool(from_x.any()):
        out[from_x] = sample(logits[from_x], u=u_token[from_x])            # (n, K), n << B L
    return out


def reverse_step(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                 schedule, generator: torch.Generator, greedy: bool = False) -> torch.Tensor:
    """One step t -> s < t of eq. (2). zt (B, L) int64, t and s (B,) -> z_s (B, L) int64."""
    logits = _logits(denoiser, zt, t, schedule)                            # (B, L, K)
    return posterior_step(logits, zt, schedule.alpha(t.to(torch.float64)),
                          schedule.alpha(s.to(torch.float64)), generator, greedy)


def final_step(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, schedule,
               generator: torch.Generator, final: str = "ancestral",
               greedy: bool = False) -> torch.Tensor:
    """Duo's noise removal from t = t_min: ``ancestral`` (to alpha_s = 1), ``greedy``, ``none``."""
    if final == "none":
        return zt
    logits = _logits(denoiser, zt, t, schedule)
    if final == "greedy":
        return argmax(logits)
    return posterior_step(logits, zt, schedule.alpha(t.to(torch.float64)), 1.0, generator,
                          greedy)                                           # alpha_s = 1


def reverse_process(denoiser: Denoiser, zt: torch.Tensor, t0: torch.Tensor | float, schedule,
                    generator: torch.Generator, config: SamplerConfig = SamplerConfig(),
                    free: torch.Tensor | None = None) -> torch.Tensor:
    """Run eq. (2) from per-row start times down to t_min, then the final step.

    Args:
        denoiser: (zt (B, L) int64, sigma (B,)) -> logits (B, L, K).
        zt: (B, L) int64 start ids.
        t0: (B,) or scalar start time(s), each in (t_min, 1].
        schedule: has ``alpha(t)``.
        generator: the source of randomness, on ``zt.device`` (unused by posterior-argmax).
        config: steps, t_min, dynamics, final step.
        free: (B, L) bool, the positions the process may change (None: all); the others keep
            their ids of ``zt`` throughout (e.g. the padding of a probed sequence).
    Returns:
        (B, L) int64 denoised ids.
    """
    t0 = torch.as_tensor(t0, dtype=torch.float64, device=zt.device).expand(zt.shape[0])
    assert bool((t0 > config.t_min).all() and (t0 <= 1.0).all()), "start times in (t_min, 1]"
    grid = time_grid(t0, config.steps, config.t_min)                       # (B, steps + 1)
    greedy = config.dynamics == "posterior-argmax"
    z = zt
    for i in range(config.steps):
        # 1. predict x_theta at t; 2. form p_theta(z_s | z_t) of eq. (2); 3. draw or take argmax
        z = reverse_step(denoiser, z, grid[:, i], grid[:, i + 1], schedule, generator, greedy)
        z = z if free is None else torch.where(free, z, zt)
    z = final_step(denoiser, z, grid[:, -1], schedule, generator, config.final, greedy)
    return z if free is None else torch.where(free, z, zt)


def generate(denoiser: Denoiser, num_samples: int, length: int, vocab_size: int, schedule,
             generator: torch.Generator, config: SamplerConfig = SamplerConfig(),
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Samples from the uniform prior pushed through the reverse process from t0 = 1.

    Returns (num_samples, length) int64.
    """
    z1 = prior_sample((num_samples, length), vocab_size, generator, device=device)
    return reverse_process(denoiser, z1, 1.0, schedule, generator, config)
