"""The reverse process of uniform-state diffusion, eq. (2) of the paper (docs/notation.md §3).

Notation:
    x        (..., K) a distribution over clean tokens: one-hot for the true posterior, the
             denoiser's prediction x_theta for the model posterior
    zt       (...,) int64 the current noisy ids
    alpha_t, alpha_s   signal levels with s < t, so alpha_s > alpha_t; alpha_{t|s} = alpha_t / alpha_s

    q(z_s | z_t, x) = [ K a_t (x ⊙ z_t) + (a_{t|s} - a_t) z_t + (a_s - a_t) x
                        + (1 - a_{t|s})(1 - a_s)/K 1 ]  /  [ K a_t <x, z_t> + 1 - a_t ]

The model posterior p_theta(z_s | z_t) plugs x_theta into both numerator and denominator (Duo):
it equals the normalised product q(z_s | x_theta) Q(z_t | z_s), not E_{x~x_theta} q(z_s|z_t,x).
All arithmetic is in float64. alpha_s = 1 (the last step) is allowed: the posterior is then
proportional to x ⊙ (K a_t z_t + (1 - a_t) 1).
"""

from __future__ import annotations

import torch


def _expand(a: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """alpha of shape (B,) or scalar -> broadcastable against (B, L, K) in float64."""
    a = torch.as_tensor(a, dtype=torch.float64, device=like.device)
    while a.ndim and a.ndim < like.ndim:
        a = a.unsqueeze(-1)
    return a


def posterior(x: torch.Tensor, zt: torch.Tensor, alpha_t: torch.Tensor | float,
              alpha_s: torch.Tensor | float) -> torch.Tensor:
    """q(z_s | z_t, x) of eq. (2), or p_theta(z_s | z_t) when ``x`` is the prediction x_theta.

    Args:
        x: (B, L, K) probabilities over clean ids (rows sum to 1); cast to float64.
        zt: (B, L) int64 current ids.
        alpha_t: (B,) or scalar, signal level at t.
        alpha_s: (B,) or scalar, signal level at s < t (alpha_s >= alpha_t; 1 at the last step).
    Returns:
        (B, L, K) float64, each row a probability vector.
    """
    x = x.to(torch.float64)
    K = x.shape[-1]
    a_t, a_s = _expand(alpha_t, x), _expand(alpha_s, x)
    a_ts = a_t / a_s
    # (a_s - a_t) x + (1 - a_{t|s})(1 - a_s)/K 1: the part that does not involve z_t.
    numer = (a_s - a_t) * x + (1.0 - a_ts) * (1.0 - a_s) / K
    x_at_z = x.gather(-1, zt.unsqueeze(-1))                          # (B, L, 1) = <x, z_t>
    # K a_t (x ⊙ z_t) + (a_{t|s} - a_t) z_t: only the z_t entry of each row.
    numer = numer.scatter_add(-1, zt.unsqueeze(-1), K * a_t * x_at_z + (a_ts - a_t))
    denom = K * a_t * x_at_z + 1.0 - a_t
    return numer / denom


def posterior_mixture(x_at_z: torch.Tensor, alpha_t: torch.Tensor | float,
                      alpha_s: torch.Tensor | float, vocab_size: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (2) as a three-component mixture, exactly:

        q(z_s | z_t, x) = w_x Cat(x) + w_u Uniform(K) + w_stay delta(z_s = z_t)

    with, dividing by D = K a_t <x, z_t> + 1 - a_t,
        w_x    = (a_s - a_t) / D
        w_u    = (1 - a_{t|s})(1 - a_s) / D
        w_stay = (K a_t <x, z_t> + a_{t|s} - a_t) / D,     w_x + w_u + w_stay = 1.

    Sampling from it needs only <x, z_t> per position and one draw from x (the denoiser's own
    softmax), never a (B, L, K) float64 tensor.

    Args:
        x_at_z: (B, L) probability that x (one-hot or x_theta) puts on the current id z_t.
        alpha_t, alpha_s: (B,) or scalars, s < t (alpha_s = 1 allowed).
        vocab_size: K.
    Returns:
        w_x, w_u, w_stay: (B, L) float64 each.
    """
    x_at_z = x_at_z.to(torch.float64)
    a_t, a_s = _expand(alpha_t, x_at_z), _expand(alpha_s, x_at_z)
    a_ts = a_t / a_s
    denom = vocab_size * a_t * x_at_z + 1.0 - a_t
    w_x = ((a_s - a_t) / denom).expand_as(x_at_z)
    w_u = ((1.0 - a_ts) * (1.0 - a_s) / denom).expand_as(x_at_z)
    w_stay = (vocab_size * a_t * x_at_z + a_ts - a_t) / denom
    return w_x, w_u, w_stay
