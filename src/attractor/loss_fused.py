"""The NELBO of eq. (3) fused with the softmax: no K-wide tensor beyond the logits themselves.

Same value as :func:`attractor.loss.nelbo_per_token` (the reference), computed from the logits in
chunks of tokens, with a hand-written backward pass. Per token, with p = softmax(logits),
beta = K a / (1 - a), h_j = log1p(beta p_j) (so log xbar_theta_j = log(1 - a) + h_j):

    forward:  lse, p_i = p[z_t], p_x = p[x0],  H = sum_j h_j,  G = sum_j g_j,  g_j = beta p_j / (1 + beta p_j)
    loss:     L(f_i, f_x, T) of loss.py with f = log(1 - a) + h and T = K log(1 - a) + H
    backward: dL/dlogit_k = A g_i (d_ik - p_k) + B g_x (d_xk - p_k) + C (g_k - p_k G),
              A = dL/df_i, B = dL/df_x, C = dL/dT  (per-token scalars, float64)

The K-wide sums H and G are accumulated in float64; shifting log xbar_theta by log(1 - a) keeps
them small, so the large terms that cancel at small t are handled in float64 scalars only.
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 24          # tokens per chunk x K: about 64 MiB of float32 per temporary


def _chunks(n: int, vocab: int):
    size = max(1, CHUNK_ELEMENTS // vocab)
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _scalar_terms(p_i, p_x, H, G, same, alpha, dalpha, K):
    """Per-token loss and its partials A, B, C (all float64, shape (N,))."""
    a = alpha
    beta = K * a / (1 - a)
    log1m = torch.log1p(-a)
    h_i, h_x = torch.log1p(beta * p_i), torch.log1p(beta * p_x)
    f_i = log1m + h_i
    S = K * h_i - H                                    # K log xbar_theta_i - sum_j log xbar_theta_j
    r = (1 - a) / (K * a + 1 - a)
    log_r = torch.log(r)
    c = -dalpha / (K * a)
    xbar_i = torch.where(same, K * a + 1 - a, 1 - a)
    inv_xt_i = torch.exp(-f_i)
    sum_same = (K - 1) * r * log_r + r * S
    sum_diff = S - beta * (h_x - h_i) - log_r / r
    loss = c * (K * inv_xt_i - K / xbar_i + torch.where(same, sum_same, sum_diff))
    A = c * (-K * inv_xt_i + torch.where(same, r * K, K + beta))
    B = torch.where(same, torch.zeros_like(a), -c * beta)
    C = torch.where(same, -c * r, -c)
    return loss, A, B, C


class _FusedNELBO(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, x0, zt, alpha, dalpha):
        N, K = logits.shape
        work = torch.promote_types(logits.dtype, torch.float32)          # bf16 logits: float32
        lse = torch.empty(N, dtype=work, device=logits.device)
        H = torch.empty(N, dtype=torch.float64, device=logits.device)
        G = torch.empty(N, dtype=torch.float64, device=logits.device)
        beta32 = (K * alpha / (1 - alpha)).to(work)
        for sl in _chunks(N, K):
            chunk = logits[sl].to(work)                                    # (n, K)
            lse[sl] = torch.logsumexp(chunk, dim=-1)
            p = torch.exp(chunk - lse[sl, None])
            bp = p.mul_(beta32[sl, None])                                  # beta p, in place
            G[sl] = (bp / (1 + bp)).sum(-1, dtype=torch.float64)
            H[sl] = torch.log1p(bp).sum(-1, dtype=torch.float64)
        logit_i = logits.gather(-1, zt[:, None])[:, 0].double()
        logit_x = logits.gather(-1, x0[:, None])[:, 0].double()
        p_i, p_x = torch.exp(logit_i - lse.double()), torch.exp(logit_x - lse.double())
        same = zt == x0
        loss, A, B, C = _scalar_terms(p_i, p_x, H, G, same, alpha, dalpha, K)
        ctx.save_for_backward(logits, x0, zt, lse, alpha, p_i, p_x, G, A, B, C)
        return loss.to(torch.promote_types(work, torch.float32))

    @staticmethod
    def backward(ctx, grad_out):
        logits, x0, zt, lse, alpha, p_i, p_x, G, A, B, C = ctx.saved_tensors
        N, K = logits.shape
        beta = K * alpha / (1 - alpha)
        g_i, g_x = beta * p_i / (1 + beta * p_i), beta * p_x / (1 + beta * p_x)
        go = grad_out.double()
        # dL/dlogit_k = -p_k (A g_i + B g_x + C G) + C g_k + A g_i [k = i] + B g_x [k = x]
        work = lse.dtype
        coef_p = (-(A * g_i + B * g_x + C * G) * go).to(work)
        coef_g = (C * go).to(work)
        grad = torch.empty(N, K, dtype=logits.dtype, device=logits.device)
        beta32 = beta.to(work)
        for sl in _chunks(N, K):
            p = torch.exp(logits[sl].to(work) - lse[sl, None])
            bp = p * beta32[sl, None]
            out = p.mul_(coef_p[sl, None]).add_(bp.div_(bp + 1).mul_(coef_g[sl, None]))
            grad[sl] = out
        grad.scatter_add_(-1, zt[:, None], (A * g_i * go).to(grad.dtype)[:, None])
        grad.scatter_add_(-1, x0[:, None], (B * g_x * go).to(grad.dtype)[:, None])
        return grad, None, None, None, None


def fused_nelbo_per_token(logits: torch.Tensor, x0: torch.Tensor, zt: torch.Tensor,
                          alpha_t: torch.Tensor, dalpha_t: torch.Tensor) -> torch.Tensor:
    """Eq. (3) per token straight from the logits (any float dtype, e.g. bf16 under autocast).

    Args:
        logits: (B, L, K) denoiser outputs (softmax = x_theta).
        x0, zt: (B, L) int64 clean and noisy ids.
        alpha_t, dalpha_t: (B,) signal level (< 1) and its time derivative.
    Returns:
        (B, L) per-token loss, float32 (float64 for float64 logits); differentiable with respect
        to ``logits``.
    """
    B, L, K = logits.shape
    alpha = alpha_t.to(torch.float64)[:, None].expand(B, L).reshape(-1)
    dalpha = dalpha_t.to(torch.float64)[:, None].expand(B, L).reshape(-1)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        loss = _FusedNELBO.apply(logits.reshape(-1, K), x0.reshape(-1), zt.reshape(-1), alpha,
                                 dalpha)
    return loss.view(B, L)

