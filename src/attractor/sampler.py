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
    runs its output layer on them alone; any other is called whole and its rows selected (one
    row broadcast to every position, as the unigram baseline's, stays a broadcast)."""
    if getattr(denoiser, "takes_rows", False):
        return denoiser(zt, sigma, rows=at)
    return select_rows(denoiser(zt, sigma), at)


def select_rows(logits: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """(B, L, K) logits, (B, L) bool -> the (n, K) rows of ``at`` in row-major order, without a
    copy when every position is kept or every row is the same broadcast row."""
    K = logits.shape[-1]
    if bool(at.all()) or all(s == 0 for s in logits.stride()[:-1]):
        return logits.reshape(-1, K)[: int(at.sum())]
    return logits[at]


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


def _sigma(t: torch.Tensor, schedule) -> torch.Tensor:
    """sigma_t = -log alpha_t (B,) float32, the denoiser's conditioning at times t (B,)."""
    return sigma_from_alpha(schedule.alpha(t.to(torch.float64))).to(torch.float32)


def _everywhere(zt: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(zt, dtype=torch.bool)


def _per_position(alpha: torch.Tensor | float, zt: torch.Tensor) -> torch.Tensor:
    """alpha of every row (B,) or one for all (scalar) -> (B, L) float64, one per position."""
    a = torch.as_tensor(alpha, dtype=torch.float64, device=zt.device)
    return a.reshape(-1, 1).expand(zt.shape)


def posterior_step(logits: torch.Tensor, zt: torch.Tensor, alpha_t: torch.Tensor,
                   alpha_s: torch.Tensor | float, generator: torch.Generator,
                   greedy: bool = False, at: torch.Tensor | None = None) -> torch.Tensor:
    """Draw z_s ~ p_theta(z_s | z_t) of eq. (2), or take its argmax, from the denoiser's logits.

    Uses the exact mixture form of :func:`attractor.posterior.posterior_mixture` (weights in
    float64): stay at z_t, jump to a uniform id, or draw from x_theta = softmax(logits). A step
    costs one chunked pass over the logits (:mod:`attractor.softmax_rows`: log Z, x_theta[z_t] and,
    for the argmax, the best other id) plus work on the few rows that need their K logits again:
    those whose draw falls on the x_theta component, or whose argmax leaves z_t. The argmax
    compares the z_t entry, w_stay + w_x x[z_t], with the best other entry, w_x max_{k != z_t}
    x[k] (the uniform part adds w_u / K to both); ties go to z_t.

    logits (B, L, K) any float dtype, or the (n, K) logits of the positions ``at`` (B, L) bool
    alone (:func:`logits_at`; default: all); zt (B, L) int64 -> (B, L) int64, equal to zt outside
    ``at``. Every position draws its random numbers either way, so a position's draw (and its
    result) does not depend on which others are in ``at``.
    """
    K = logits.shape[-1]
    at = _everywhere(zt) if at is None else at
    rows = logits if logits.dim() == 2 else select_rows(logits, at)        # (n, K)
    z = zt[at]                                                             # (n,)
    assert rows.shape[0] == z.shape[0], "one row of logits per position of at"
    a_t, a_s = _per_position(alpha_t, zt)[at], _per_position(alpha_s, zt)[at]
    if greedy:
        return zt.masked_scatter(at, _posterior_argmax(rows, z, a_t, a_s))
    draws = (streams.uniform(generator, zt.shape, zt.device, torch.float64),
             streams.integers(generator, 0, K, zt.shape, zt.device),
             streams.uniform(generator, zt.shape, zt.device, torch.float64))
    return zt.masked_scatter(at, _posterior_draw(rows, z, a_t, a_s, *(d[at] for d in draws)))


def _posterior_argmax(logits: torch.Tensor, z: torch.Tensor, a_t: torch.Tensor,
                      a_s: torch.Tensor) -> torch.Tensor:
    """argmax p_theta(z_s | z_t) of n positions: (n, K) logits, (n,) ids and alphas -> (n,)."""
    stats = row_stats(logits, z)
    x_at_z = stats.prob_at_index()
    w_x, _, w_stay = posterior_mixture(x_at_z, a_t, a_s, logits.shape[-1])
    leave = w_stay + w_x * x_at_z < w_x * stats.prob_best_other()          # (n,) bool
    out = z.clone()
    if bool(leave.any()):
        rows = logits[leave].float()                                       # (m, K), m << n
        rows.scatter_(-1, z[leave].unsqueeze(-1), float("-inf"))
        out[leave] = rows.argmax(dim=-1)
    return out


def _posterior_draw(logits: torch.Tensor, z: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor,
                    u: torch.Tensor, jump: torch.Tensor, u_token: torch.Tensor) -> torch.Tensor:
    """z_s ~ p_theta(z_s | z_t) of n positions from their uniform numbers u and u_token and
    uniform ids ``jump``: (n, K) logits, (n,) each -> (n,) int64."""
    log_z = log_normalizer(logits)                                         # (n,) float64
    x_at_z = (logits.gather(-1, z.unsqueeze(-1)).squeeze(-1).double() - log_z).exp()
    w_x, w_u, w_stay = posterior_mixture(x_at_z, a_t, a_s, logits.shape[-1])
    out = torch.where(u < w_stay, z, jump)
    from_x = u >= w_stay + w_u                                             # (n,) bool
    if bool(from_x.any()):
        out[from_x] = sample(logits[from_x], u=u_token[from_x])            # (m, K), m << n
    return out


def reverse_step(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                 schedule, generator: torch.Generator, greedy: bool = False,
                 free: torch.Tensor | None = None) -> torch.Tensor:
    """One step t -> s < t of eq. (2) at the positions ``free`` (B, L) bool (None: all), whose
    logits alone are asked for; the others keep their ids. zt (B, L) int64, t and s (B,) ->
    z_s (B, L) int64."""
    at = _everywhere(zt) if free is None else free
    logits = logits_at(denoiser, zt, _sigma(t, schedule), at)              # (n, K)
    return posterior_step(logits, zt, schedule.alpha(t.to(torch.float64)),
                          schedule.alpha(s.to(torch.float64)), generator, greedy, at)


def final_step(denoiser: Denoiser, zt: torch.Tensor, t: torch.Tensor, schedule,
               generator: torch.Generator, final: str = "ancestral",
               greedy: bool = False, free: torch.Tensor | None = None) -> torch.Tensor:
    """Duo's noise removal from t = t_min: ``ancestral`` (to alpha_s = 1), ``greedy``, ``none``;
    ``free`` as in :func:`reverse_step`."""
    if final == "none":
        return zt
    at = _everywhere(zt) if free is None else free
    logits = logits_at(denoiser, zt, _sigma(t, schedule), at)              # (n, K)
    if final == "greedy":
        return zt.masked_scatter(at, argmax(logits))
    return posterior_step(logits, zt, schedule.alpha(t.to(torch.float64)), 1.0, generator,
                          greedy, at)                                       # alpha_s = 1


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
            their ids of ``zt`` throughout (e.g. the padding of a probed sequence), and their
            logits are never asked for.
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
        z = reverse_step(denoiser, z, grid[:, i], grid[:, i + 1], schedule, generator, greedy,
                         free)
    return final_step(denoiser, z, grid[:, -1], schedule, generator, config.final, greedy, free)


def generate(denoiser: Denoiser, num_samples: int, length: int, vocab_size: int, schedule,
             generator: torch.Generator, config: SamplerConfig = SamplerConfig(),
             device: torch.device | str = "cpu") -> torch.Tensor:
    """Samples from the uniform prior pushed through the reverse process from t0 = 1.

    Returns (num_samples, length) int64.
    """
    z1 = prior_sample((num_samples, length), vocab_size, generator, device=device)
    return reverse_process(denoiser, z1, 1.0, schedule, generator, config)
