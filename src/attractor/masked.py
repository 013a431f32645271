"""Absorbing-state (masked) diffusion, MDLM-style: forward process, reverse steps, NELBO.

Notation as in docs/notation.md, with m the mask id:

    forward      q(z_t | x) = alpha_t x + (1 - alpha_t) m: each token independently becomes the
                 mask with probability 1 - alpha_t (pads never do, in this project)
    SUBS         x_theta puts no mass on m, and an unmasked position carries its token over:
                 x_theta(z_t)^l = z_t^l wherever z_t^l != m
    posterior    a masked z_t^l: q(z_s | z_t, x) = [(1 - alpha_s) m + (alpha_s - alpha_t) x] /
                 (1 - alpha_t); an unmasked one stays. The model posterior puts x_theta for x.
    NELBO        L_t = (-alpha'_t / (1 - alpha_t)) * (-log x_theta(z_t)^l[x^l]) at masked
                 positions, 0 elsewhere (the continuous-time limit, MDLM eq. 10)

The reverse processes here are the masked family's analogues of the uniform ones:
:func:`ancestral` unmasks each masked position between t and s with probability
(alpha_s - alpha_t) / (1 - alpha_t) and draws its token from x_theta; :func:`confidence` (the
deterministic one) unmasks, at each of its steps, the masked positions the denoiser is most
sure of, with their argmax. Both end with no mask left.

Denoiser: (zt (B, L) int64, sigma (B,)) -> logits (B, L, K); the mask logit is ignored.
"""

from __future__ import annotations

import torch

from attractor import softmax_rows
from attractor.sampler import Denoiser, logits_at, time_grid
from attractor.schedule import sigma_from_alpha
from attractor.streams import uniform


def mask_forward(x0: torch.Tensor, alpha: torch.Tensor, mask_id: int,
                 generator: torch.Generator, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """z_t ~ q(z_t | x0): x0 (B, L) int64, alpha (B,) -> (B, L) int64; only ``allowed`` positions
    (B, L) bool can be masked (None: all)."""
    u = uniform(generator, x0.shape, x0.device, torch.float64)
    hit = u >= alpha.to(torch.float64)[:, None]
    if allowed is not None:
        hit &= allowed
    return torch.where(hit, torch.full_like(x0, mask_id), x0)


def mask_exactly(x0: torch.Tensor, n: torch.Tensor, mask_id: int, generator: torch.Generator,
                 allowed: torch.Tensor) -> torch.Tensor:
    """Mask exactly n[b] of the ``allowed`` positions of each row, chosen uniformly.

    x0 (B, L) int64, n (B,) int64 (clipped to the allowed count), allowed (B, L) bool."""
    keys = uniform(generator, x0.shape, x0.device)
    keys = torch.where(allowed, keys, torch.full_like(keys, 2.0))         # never chosen
    rank = keys.argsort(-1).argsort(-1)                                    # 0 = smallest key
    hit = (rank < n.clamp(max=allowed.sum(-1))[:, None]) & allowed
    return torch.where(hit, torch.full_like(x0, mask_id), x0)


def subs_log_probs(logits: torch.Tensor, zt: torch.Tensor, mask_id: int) -> torch.Tensor:
    """log x_theta under SUBS: (B, L, K) logits, (B, L) z_t -> (B, L, K) float32 log-probs with
    no mass on the mask and a one-hot row wherever z_t is not masked."""
    log_p = without_mask(logits, mask_id).log_softmax(-1)
    keep = zt != mask_id
    carried = torch.full_like(log_p, float("-inf"))
    carried.scatter_(-1, zt.unsqueeze(-1), 0.0)
    return torch.where(keep.unsqueeze(-1), carried, log_p)


def nelbo_per_token(logits: torch.Tensor, x0: torch.Tensor, zt: torch.Tensor,
                    alpha_t: torch.Tensor, dalpha_t: torch.Tensor, mask_id: int) -> torch.Tensor:
    """The masked NELBO integrand per token, (B, L) float32 (0 where z_t is not masked; only the
    masked rows' K-wide work is done).

    logits (B, L, K) (any float dtype), or only the (n, K) rows of the masked positions
    (row-major, :func:`attractor.sampler.logits_at`); x0 and zt (B, L) int64, alpha_t and
    dalpha_t (B,)."""
    masked = zt == mask_id
    if logits.dim() == 3:
        logits = logits[masked]
    rows = without_mask(logits, mask_id)                                   # (n, K) float32
    log_p = rows.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1) - torch.logsumexp(rows, dim=-1)
    weight = (-dalpha_t / (1.0 - alpha_t)).to(torch.float32)[:, None].expand(masked.shape)
    return log_p.new_zeros(masked.shape).index_put((masked,), weight[masked] * -log_p)


def _logits_at(denoiser: Denoiser, z: torch.Tensor, t: torch.Tensor, schedule, mask_id: int,
               at: torch.Tensor) -> torch.Tensor:
    """The (n, K) float32 logits of the positions ``at`` (B, L) bool, the mask's at -inf."""
    return without_mask(logits_at(denoiser, z, _sigma(t, schedule), at), mask_id)


def _sigma(t: torch.Tensor, schedule) -> torch.Tensor:
    return sigma_from_alpha(schedule.alpha(t.to(torch.float64))).to(torch.float32)


def without_mask(logits: torch.Tensor, mask_id: int) -> torch.Tensor:
    """A float32 copy of (..., K) logits with the mask's logit at -inf (SUBS: x_theta never
    predicts the mask). Out of place: a denoiser may return a view it reuses."""
    index = torch.tensor([mask_id], device=logits.device)
    return logits.float().index_fill(-1, index, float("-inf"))


def unmask_step(denoiser: Denoiser, z: torch.Tensor, t: torch.Tensor, s: torch.Tensor,
                schedule, mask_id: int, generator: torch.Generator) -> torch.Tensor:
    """One ancestral step t -> s (B,) of the masked posterior: each masked position unmasks with
    probability (alpha_s - alpha_t) / (1 - alpha_t), its token drawn from x_theta(z, t) (the
    mask excluded); the others stay. Calls the denoiser only if some position unmasks."""
    masked = z == mask_id
    a_t, a_s = schedule.alpha(t.to(torch.float64)), schedule.alpha(s.to(torch.float64))
    p_unmask = ((a_s - a_t) / (1.0 - a_t)).clamp(0, 1)[:, None]                # (B, 1)
    u = uniform(generator, z.shape, z.device, torch.float64)
    u_token = uniform(generator, z.shape, z.device, torch.float64)    # drawn for every row
    go = masked & (u < p_unmask)
    if not bool(go.any()):
        return z
    rows = _logits_at(denoiser, z, t, schedule, mask_id, go)                   # (n, K)
    return z.masked_scatter(go, softmax_rows.sample(rows, u=u_token[go]))


def ancestral(denoiser: Denoiser, zt: torch.Tensor, t0: torch.Tensor, schedule, steps: int,
              mask_id: int, generator: torch.Generator) -> torch.Tensor:
    """Ancestral unmasking on linspace(t0, 0, steps + 1): the last step reaches alpha = 1
    (every schedule has alpha_0 = 1), so no mask remains."""
    grid = time_grid(torch.as_tensor(t0, dtype=torch.float64, device=zt.device), steps, 0.0)
    z = zt
    for i in range(steps):
        if not bool((z == mask_id).any()):
            break
        z = unmask_step(denoiser, z, grid[:, i], grid[:, i + 1], schedule, mask_id, generator)
    return z


def confidence(denoiser: Denoiser, zt: torch.Tensor, t0: torch.Tensor, schedule, steps: int,
               mask_id: int) -> torch.Tensor:
    """Deterministic unmasking: at step i of ``steps``, the ceil(remaining / (steps - i)) masked
    positions of each row with the largest max_k x_theta take their argmax (ties: first)."""
    grid = time_grid(torch.as_tensor(t0, dtype=torch.float64, device=zt.device), steps, 0.0)
    z = zt.clone()
    for i in range(steps):
        masked = z == mask_id
        remaining = masked.sum(-1)                                          # (B,)
        if not bool(remaining.any()):
            break
        probs = _logits_at(denoiser, z, grid[:, i], schedule, mask_id, masked).softmax(-1)
        best, token = probs.max(-1)                           # (n,) each, the masked positions
        k = torch.ceil(remaining / (steps - i)).long()                      # (B,)
        score = best.new_full(z.shape, -1.0).masked_scatter(masked, best)
        rank = (-score).argsort(dim=-1, stable=True).argsort(dim=-1)
        go = masked & (rank < k[:, None])
        z = torch.where(go, z.masked_scatter(masked, token), z)
    return z


def leave_one_out(denoiser: Denoiser, x: torch.Tensor, real: torch.Tensor, mask_id: int,
                  t: float, schedule, max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-likelihood statistics: for every real position l, x with l alone masked.

    Returns the entropy (eq. 13) of x_theta at l and log x_theta[x^l], each (B, L) float64, 0
    at the positions that are not ``real``. This is the masked family's analogue of the
    conditional entropy of a clean sequence at t -> 0, which SUBS makes identically 0.
    ``t`` conditions the denoiser (e.g. 1 / L: one position in L masked). One forward row per
    real position, ``max_rows`` rows per call.
    """
    rows, cols = real.nonzero(as_tuple=True)                               # (R,) each
    entropy = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    log_p = torch.zeros_like(entropy)
    for lo in range(0, len(rows), max_rows):
        r, c = rows[lo: lo + max_rows], cols[lo: lo + max_rows]
        z = x[r].clone()
        z[torch.arange(len(r), device=x.device), c] = mask_id
        tt = torch.full((len(r),), t, dtype=torch.float64, device=x.device)
        one = torch.zeros(z.shape, dtype=torch.bool, device=x.device)
        one[torch.arange(len(r), device=x.device), c] = True              # row i: position c_i
        at = without_mask(logits_at(denoiser, z, _sigma(tt, schedule), one), mask_id)  # (n, K)
        h, log_z = softmax_rows.entropy_and_log_normalizer(at)
        entropy[r, c] = h
        log_p[r, c] = at.gather(-1, x[r, c].unsqueeze(-1)).squeeze(-1).double() - log_z
    return entropy, log_p
