"""The noise family of a model: the operations each probe needs, for uniform-state and for
absorbing-state (masked) diffusion.

The probes are written once against this interface; the family says what corrupting, retrieving,
scoring and generating mean for a model (docs/probes.md, "Masked models"):

    corrupt_exactly   change exactly n real tokens (Exp. 1)
    forward           the forward process at alpha_t on real tokens (Exp. 2)
    retrieve          back from z_t: zero-temperature (Exp. 1) or ancestral (Exp. 2) dynamics
    start_entropy     token entropies of the prediction at the start of retrieval (Fig. 3B),
                      at real positions (0 at pads, whose K-wide work is skipped)
    clean_scores      per-token entropy and log-probability of each real token of a clean
                      sequence (0 at pads, whose K-wide work is skipped):
                      conditioned on sigma(t -> 0) (uniform), or with that token alone masked
                      (masked: the leave-one-out pseudo-likelihood; SUBS makes the clean-input
                      entropy identically 0)
    nelbo             the Monte-Carlo NELBO of each sequence (eq. 3, or MDLM's for masked)
    generate          samples from the prior (uniform ids, or all masks), or left to right
                      from BOS for the autoregressive baseline
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attractor import masked, retrieval, softmax_rows, streams
from attractor.errors import UserError
from attractor.forward import corrupt_exactly, q_xt
from attractor.loss import stratified_times
from attractor.loss_fused import fused_nelbo_per_token
from attractor.sampler import SamplerConfig, generate, logits_at, reverse_process
from attractor.schedule import sigma_from_alpha

T_MIN = SamplerConfig().t_min


def _sigma(schedule, t: torch.Tensor) -> torch.Tensor:
    return sigma_from_alpha(schedule.alpha(t.to(torch.float64))).to(torch.float32)


def _repeat_times(n: int, samples: int, generator, device, eps: float = 1e-3) -> torch.Tensor:
    """(n * samples,) stratified times, each sequence's ``samples`` spread over [eps, 1]: over
    the whole batch from a generator, or per sequence from keyed streams (row b's j-th time in
    the j-th of ``samples`` strata)."""
    if isinstance(generator, streams.RowStreams):
        u = generator.uniform(samples)                                      # (n, samples)
        strata = torch.arange(samples, dtype=torch.float64, device=u.device)
        t = (1.0 - eps) * (strata + u) / samples + eps
        return t.reshape(-1).to(torch.float32)
    t = stratified_times(n * samples, generator, eps, device=device)
    return t.view(samples, n).T.reshape(-1)


@dataclass(frozen=True)
class Uniform:
    """Uniform-state diffusion (the paper's UDDMs)."""

    schedule: object
    vocab_size: int
    name: str = "uniform"

    def corrupt_exactly(self, x0, n, generator, allowed):
        return corrupt_exactly(x0, n, self.vocab_size, generator, allowed=allowed)

    def forward(self, x0, levels, generator, allowed):
        zt = q_xt(x0, self.schedule.alpha(levels), self.vocab_size, generator)
        return torch.where(allowed, zt, x0)

    def retrieve(self, kind: str, denoiser, zt, t0, generator, free, cfg,
                 targets=None) -> tuple:
        """x_hat and extras; ``kind`` is "stochastic" or a deterministic dynamics."""
        if kind == "annealed":
            return retrieval.annealed(denoiser, zt, t0, self.schedule, cfg.reverse_steps, T_MIN,
                                      free), {}
        if kind == "fixed-point":
            r = retrieval.fixed_point(denoiser, zt, t0, self.schedule, cfg.max_iterations, free)
            return r.z, {"iterations": r.iterations, "outcome": r.outcome,
                         "cycle_length": r.cycle_length}
        dynamics = "ancestral" if kind == "stochastic" else "posterior-argmax"
        sampler = SamplerConfig(steps=cfg.reverse_steps, dynamics=dynamics)
        return reverse_process(denoiser, zt, t0, self.schedule, generator, sampler, free), {}

    def start_entropy(self, denoiser, zt, t0, real):
        return _entropy_at(logits_at(denoiser, zt, _sigma(self.schedule, t0), real), real)

    def clean_scores(self, denoiser, x, real, t: float, max_rows: int):
        tt = torch.full((len(x),), t, dtype=torch.float64, device=x.device)
        return _scores_at(logits_at(denoiser, x, _sigma(self.schedule, tt), real), x, real)

    def nelbo(self, denoiser, x, real, samples: int, generator):
        t = _repeat_times(len(x), samples, generator, x.device)
        x_rep, m_rep = x.repeat_interleave(samples, 0), real.repeat_interleave(samples, 0)
        alpha, dalpha = self.schedule.alpha(t), self.schedule.dalpha(t)
        zt = q_xt(x_rep, alpha, self.vocab_size, streams.repeat(generator, samples))
        logits = logits_at(denoiser, zt, sigma_from_alpha(alpha).to(torch.float32), m_rep)
        per_token = fused_nelbo_per_token(logits, x_rep, zt, alpha, dalpha, rows=m_rep)
        return per_token.double().sum(-1).view(len(x), samples).mean(-1)

    def generate(self, denoiser, n: int, length: int, generator, steps: int, final: str,
                 device):
        cfg = SamplerConfig(steps=steps, final=final)
        return generate(denoiser, n, length, self.vocab_size, self.schedule, generator, cfg,
                        device=device)


@dataclass(frozen=True)
class Masked:
    """Absorbing-state (masked) diffusion, MDLM-style (:mod:`attractor.masked`)."""

    schedule: object
    vocab_size: int
    mask_id: int
    name: str = "masked"

    def corrupt_exactly(self, x0, n, generator, allowed):
        return masked.mask_exactly(x0, n, self.mask_id, generator, allowed)

    def forward(self, x0, levels, generator, allowed):
        return masked.mask_forward(x0, self.schedule.alpha(levels), self.mask_id, generator,
                                   allowed)

    def retrieve(self, kind: str, denoiser, zt, t0, generator, free, cfg,
                 targets=None) -> tuple:
        """Ancestral unmasking (Exp. 2), or confidence-ordered greedy unmasking (Exp. 1: the
        masked analogue of ``annealed``; the other uniform dynamics have none)."""
        check_dynamics(self.name, kind)
        if kind == "stochastic":
            return masked.ancestral(denoiser, zt, t0, self.schedule, cfg.reverse_steps,
                                    self.mask_id, generator), {}
        return masked.confidence(denoiser, zt, t0, self.schedule, cfg.reverse_steps,
                                 self.mask_id), {}

    def start_entropy(self, denoiser, zt, t0, real):
        rows = logits_at(denoiser, zt, _sigma(self.schedule, t0), real)
        return _entropy_at(masked.without_mask(rows, self.mask_id), real)

    def clean_scores(self, denoiser, x, real, t: float, max_rows: int):
        return masked.leave_one_out(denoiser, x, real, self.mask_id,
                                    1.0 / max(x.shape[1], 1), self.schedule, max_rows)

    def nelbo(self, denoiser, x, real, samples: int, generator):
        t = _repeat_times(len(x), samples, generator, x.device)
        x_rep, m_rep = x.repeat_interleave(samples, 0), real.repeat_interleave(samples, 0)
        alpha, dalpha = self.schedule.alpha(t), self.schedule.dalpha(t)
        zt = masked.mask_forward(x_rep, alpha, self.mask_id, streams.repeat(generator, samples),
                                 m_rep)
        logits = logits_at(denoiser, zt, sigma_from_alpha(alpha).to(torch.float32),
                           zt == self.mask_id)                          # the masked rows
        per_token = masked.nelbo_per_token(logits, x_rep, zt, alpha, dalpha, self.mask_id)
        return per_token.double().sum(-1).view(len(x), samples).mean(-1)

    def generate(self, denoiser, n: int, length: int, generator, steps: int, final: str,
                 device):
        z = torch.full((n, length), self.mask_id, dtype=torch.long, device=device)
        t0 = torch.ones(n, dtype=torch.float64, device=device)
        return masked.ancestral(denoiser, z, t0, self.schedule, steps, self.mask_id, generator)


def check_dynamics(family: str, kind: str) -> None:
    """Only the uniform family has fixed-point and posterior-argmax retrieval."""
    if kind in ("fixed-point", "posterior-argmax"):
        raise UserError(f"--dynamics {kind} is defined for uniform-state models only; a "
                        f"{family} model retrieves with the default (annealed: its analogue)")


@dataclass(frozen=True)
class Autoregressive:
    """The autoregressive baseline (the same transformer, causal). Its probes, this project's
    analogues: corruption as for uniform-state models but never of the first token; recovery
    resamples the corrupted positions (known to the probe) left to right, each conditioned on
    the prefix as repaired so far, by argmax (Exp. 1) or by sampling (Exp. 2); the conditional
    entropy of a token is that of its next-token prediction, and the membership loss the exact
    negative log-likelihood."""

    schedule: object
    vocab_size: int
    bos_id: int
    name: str = "ar"

    def corrupt_exactly(self, x0, n, generator, allowed):
        return corrupt_exactly(x0, n, self.vocab_size, generator, allowed=_after_first(allowed))

    def forward(self, x0, levels, generator, allowed):
        zt = q_xt(x0, self.schedule.alpha(levels), self.vocab_size, generator)
        return torch.where(_after_first(allowed), zt, x0)

    def retrieve(self, kind: str, denoiser, zt, t0, generator, free, cfg,
                 targets=None) -> tuple:
        check_dynamics(self.name, kind)
        z = zt.clone()
        targets = free if targets is None else targets
        u = streams.uniform(generator, z.shape, z.device, torch.float64) \
            if kind == "stochastic" else None                      # one number per position
        for pos in range(1, z.shape[1]):
            rows = targets[:, pos].nonzero().squeeze(-1)
            if len(rows) == 0:
                continue
            before = torch.zeros(len(rows), z.shape[1], dtype=torch.bool, device=z.device)
            before[:, pos - 1] = True                               # the logits predicting pos
            logits = logits_at(denoiser, z[rows], torch.zeros(len(rows), device=z.device), before)
            z[rows, pos] = softmax_rows.argmax(logits) if u is None else \
                softmax_rows.sample(logits, u=u[rows, pos])
        return z, {}

    def start_entropy(self, denoiser, zt, t0, real):
        return self.clean_scores(denoiser, zt, real, 0.0, len(zt))[0]

    def clean_scores(self, denoiser, x, real, t: float, max_rows: int):
        # the logits at l predict token l + 1; the first token is given, not predicted
        before = F.pad(real[:, 1:], (0, 1))                       # positions followed by a real one
        logits = logits_at(denoiser, x, torch.zeros(len(x), device=x.device), before)
        return _scores_at(logits, x, F.pad(real[:, 1:], (1, 0)))

    def nelbo(self, denoiser, x, real, samples: int, generator):
        """The exact negative log-likelihood of each sequence (nats), over real tokens."""
        log_p = self.clean_scores(denoiser, x, real, 0.0, len(x))[1]
        return -(log_p * real).sum(-1)

    def generate(self, denoiser, n: int, length: int, generator, steps: int, final: str,
                 device):
        z = torch.full((n, length), self.bos_id, dtype=torch.long, device=device)
        free = torch.ones_like(z, dtype=torch.bool)
        free[:, 0] = False
        return self.retrieve("stochastic", denoiser, z, None, generator, free, None, free)[0]


def _scores_at(rows: torch.Tensor, x: torch.Tensor, at: torch.Tensor):
    """Entropy (eq. 13) and log x_theta[x^l] at the positions ``at`` (B, L) bool, from their
    (n, K) logits ``rows`` (row-major): each (B, L) float64, 0 elsewhere."""
    h, log_z = softmax_rows.entropy_and_log_normalizer(rows)
    log_p = rows.gather(-1, x[at].unsqueeze(-1)).squeeze(-1).double() - log_z
    zeros = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    return zeros.index_put((at,), h), zeros.index_put((at,), log_p)


def _entropy_at(rows: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """Eq. (13) of the (n, K) logits ``rows`` of the positions ``at`` (B, L) bool, as (B, L)
    float64, 0 elsewhere."""
    zeros = torch.zeros(at.shape, dtype=torch.float64, device=at.device)
    return zeros.index_put((at,), softmax_rows.entropy(rows))


def _after_first(allowed: torch.Tensor) -> torch.Tensor:
    out = allowed.clone()
    out[:, 0] = False
    return out


def family_of(run) -> Uniform | Masked | Autoregressive:
    """The family operations of a run (or any model the probes open)."""
    if run.family == "masked":
        return Masked(run.schedule, run.vocab_size, run.mask_id)
    if run.family == "ar":
        return Autoregressive(run.schedule, run.vocab_size, run.dataset.bos_id)
    return Uniform(run.schedule, run.vocab_size)
