"""The continuous-time NELBO of uniform-state diffusion, eq. (3) (docs/notation.md §4).

Notation, per token, with i = z_t and x the clean id:
    xbar        = K a_t onehot(x)  + (1 - a_t) 1      (sums to K)
    xbar_theta  = K a_t x_theta    + (1 - a_t) 1
    L_t = (-a'_t) / (K a_t) * [ K / xbar_theta[i] - K / xbar[i]
          + sum_j (xbar[j] / xbar[i]) log(xbar_theta[i] xbar[j] / (xbar_theta[j] xbar[i])) ]

The sum over j is evaluated in closed form (xbar takes only two values), at O(K) per token and
without any K x K tensor. With r = (1 - a) / (K a + 1 - a) and
S = K log xbar_theta[i] - sum_j log xbar_theta[j]:
    z_t == x:  sum = (K - 1) r log r + r S
    z_t != x:  sum = S - (K a / (1 - a)) (log xbar_theta[x] - log xbar_theta[i]) - (1/r) log r
The 1/r and K a/(1 - a) terms are large for small t and cancel, so this is always computed in
float32 or higher, outside any bf16 autocast region.
"""

from __future__ import annotations

import torch

from attractor.errors import require


def _log_xbar_theta(log_probs: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """log(K a x_theta + (1 - a)) from log x_theta, stably. (B, L, K) in, (B, L, K) out."""
    K = log_probs.shape[-1]
    a = alpha.reshape(-1, 1, 1)
    return torch.logaddexp(log_probs + torch.log(K * a), torch.log1p(-a).expand_as(log_probs))


def nelbo_per_token(log_probs: torch.Tensor, x0: torch.Tensor, zt: torch.Tensor,
                    alpha_t: torch.Tensor, dalpha_t: torch.Tensor) -> torch.Tensor:
    """The integrand L_t of eq. (3) for every token.

    Args:
        log_probs: (B, L, K) log x_theta (log-softmax of the denoiser's logits), float32/64.
        x0: (B, L) int64 clean ids.
        zt: (B, L) int64 noisy ids.
        alpha_t: (B,) signal level (must be < 1).
        dalpha_t: (B,) its time derivative (negative).
    Returns:
        (B, L) per-token loss in the dtype of ``log_probs`` (at least float32).
    """
    dtype = torch.promote_types(log_probs.dtype, torch.float32)
    with torch.autocast(device_type=log_probs.device.type, enabled=False):
        log_probs = log_probs.to(dtype)
        K = log_probs.shape[-1]
        a = alpha_t.to(dtype)
        log_xt = _log_xbar_theta(log_probs, a)                          # (B, L, K)
        log_xt_i = log_xt.gather(-1, zt.unsqueeze(-1)).squeeze(-1)      # (B, L) at i = z_t
        log_xt_x = log_xt.gather(-1, x0.unsqueeze(-1)).squeeze(-1)      # (B, L) at the clean id
        S = K * log_xt_i - log_xt.sum(-1)
        a = a[:, None]
        r = (1 - a) / (K * a + 1 - a)
        log_r = torch.log(r)
        same = zt == x0
        sum_same = (K - 1) * r * log_r + r * S
        sum_diff = S - (K * a / (1 - a)) * (log_xt_x - log_xt_i) - log_r / r
        xbar_i = torch.where(same, K * a + 1 - a, 1 - a)
        bracket = K * torch.exp(-log_xt_i) - K / xbar_i + torch.where(same, sum_same, sum_diff)
        return (-dalpha_t.to(dtype))[:, None] / (K * a) * bracket


def stratified_times(n: int, generator: torch.Generator, eps: float = 1e-3,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Antithetic ("stratified") times for a batch of n: u_i = (U_i / n + i / n) mod 1,
    mapped to t = (1 - eps) u + eps in [eps, 1] (docs/notation.md §1, variance reduction).

    For data parallelism draw the global batch on every rank with the same generator state and
    take this rank's slice, so the strata cover the global batch.
    Returns (n,) float32.
    """
    require(n >= 1, "batch size must be at least 1")
    u = torch.rand(n, generator=generator, device=device)
    offset = torch.arange(n, device=device, dtype=u.dtype) / n
    u = (u / n + offset) % 1.0
    return (1.0 - eps) * u + eps
