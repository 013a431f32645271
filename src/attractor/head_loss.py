"""The DiT's output projection fused with the NELBO of eq. (3): no (N, K) logits tensor at all.

:mod:`attractor.loss_fused` needs, per token, only a few statistics of the logits (lse, the sums
G and H, the logits at z_t and x0; docs/notation.md §4) and, in the backward pass, per-token
coefficients of p and g. So the logits can be formed a chunk of tokens at a time from the final
hidden states h, reduced and dropped:

    forward:   logits_c = h_c W^T + b            (c: a chunk of tokens; (c, K), then reduced)
    backward:  logits_c again, D_c = dL/dlogits_c (loss_fused's kernel), then at once
               dh_c = D_c W,   dW += D_c^T h_c,   db += sum_rows D_c

Peak memory is a few (chunk, K) buffers instead of the (N, K) logits and their gradient (two bf16
tensors of 390 MiB at N = 4096, K = 50,258); the price is a second product for the logits in the
backward pass. Under bf16 autocast the products run in bf16 like ``nn.Linear`` under autocast,
the loss reads each bf16 chunk in float32 and forms its scalar terms in float64 (as loss_fused
does), D_c is rounded to bf16 before the two products (as the logits' gradient would be), and
dW and db are accumulated over chunks in float32.
"""

from __future__ import annotations

import torch

from attractor.errors import require
from attractor.loss_fused import _grad_chunk, _scalar_terms, _stats_chunk

# Elements of one (chunk, K) buffer by device: large enough that the products keep most of their
# speed (the weight is read once per chunk), small enough that no (N, K) tensor is ever held.
# Not tuned by measurement yet.
HEAD_CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 26}


def default_chunk_tokens(vocab: int, device_type: str) -> int:
    """Tokens per chunk: HEAD_CHUNK_ELEMENTS[device] // K, at least 1."""
    return max(1, HEAD_CHUNK_ELEMENTS.get(device_type, 1 << 23) // vocab)


def _token_chunks(n: int, rows: int):
    for start in range(0, n, rows):
        yield slice(start, min(n, start + rows))


def _chunk_buffers(rows: int, K: int, dtype, work, device) -> tuple[torch.Tensor, ...]:
    """(rows, K) buffers reused by every chunk: the logits (product dtype) and the two scratch
    buffers of loss_fused's chunk kernels (working dtype)."""
    return tuple(torch.empty(rows, K, dtype=t, device=device) for t in (dtype, work, work))


def _forward_stats(h, weight, bias, x0, zt, alpha, plan):
    """Per-token lse (working dtype) and logit_i, logit_x, G, H (float64), each (N,), from the
    logits formed a chunk of tokens at a time."""
    dtype, rows = plan
    N, K = h.shape[0], weight.shape[0]
    work = torch.promote_types(dtype, torch.float32)
    w, b = weight.to(dtype), bias.to(dtype)
    beta = (K * alpha / (1 - alpha)).to(work)
    lse = torch.empty(N, dtype=work, device=h.device)
    logit_i, logit_x, G, H = (torch.empty(N, dtype=torch.float64, device=h.device) for _ in range(4))
    logits, b1, b2 = _chunk_buffers(min(rows, N), K, dtype, work, h.device)
    for sl in _token_chunks(N, rows):
        n = sl.stop - sl.start
        x = torch.addmm(b, h[sl].to(dtype), w.t(), out=logits[:n])      # = F.linear's product
        # G and H are row sums of non-negative terms: exact to ~1e-7 relative in float32
        lse[sl], G[sl], H[sl] = _stats_chunk(x, beta[sl], b1[:n], b2[:n])
        logit_i[sl] = x.gather(-1, zt[sl, None])[:, 0]
        logit_x[sl] = x.gather(-1, x0[sl, None])[:, 0]
    return lse, logit_i, logit_x, G, H


def _logit_grad_coefficients(saved, grad_out, K: int, work):
    """The per-token coefficients of dL/dlogit_k, formed as in loss_fused's backward pass:
    coef_p p_k + coef_g g_k + hot_i [k = z_t] + hot_x [k = x0]; plus beta. Each (N,), ``work``."""
    alpha, p_i, p_x, G, A, B, C = saved
    beta = K * alpha / (1 - alpha)
    g_i, g_x = beta * p_i / (1 + beta * p_i), beta * p_x / (1 + beta * p_x)
    go = grad_out.double()
    coef_p = -(A * g_i + B * g_x + C * G) * go
    return tuple(v.to(work) for v in (beta, coef_p, C * go, A * g_i * go, B * g_x * go))


def _backward_chunks(h, weight, bias, zt, x0, lse, coefs, plan):
    """dh (N, d), dW (K, d), db (K,) in the dtypes of h, weight and bias, a chunk of tokens at
    a time; dW and db are accumulated in float32 or higher."""
    dtype, rows = plan
    (N, d), K = h.shape, weight.shape[0]
    work, acc = lse.dtype, torch.promote_types(dtype, torch.float32)
    beta, coef_p, coef_g, hot_i, hot_x = coefs
    w, b = weight.to(dtype), bias.to(dtype)
    dh = torch.empty_like(h)
    dW = torch.zeros(K, d, dtype=acc, device=h.device)
    db = torch.zeros(K, dtype=acc, device=h.device)
    logits, b1, b2 = _chunk_buffers(min(rows, N), K, dtype, work, h.device)
    rounded = None if dtype == work else torch.empty_like(logits)       # D_c in the product dtype
    product = None if dtype == acc else torch.empty(K, d, dtype=dtype, device=h.device)
    for sl in _token_chunks(N, rows):
        n = sl.stop - sl.start
        h_c = h[sl].to(dtype)
        x = torch.addmm(b, h_c, w.t(), out=logits[:n])
        grad = _grad_chunk(x, lse[sl], beta[sl], coef_p[sl], coef_g[sl], b1[:n], b2[:n])
        # the one-hot terms, added in the working precision before D_c is rounded (loss_fused)
        idx = torch.arange(n, device=h.device)
        grad.index_put_((idx, zt[sl]), hot_i[sl], accumulate=True)
        grad.index_put_((idx, x0[sl]), hot_x[sl], accumulate=True)
        if rounded is not None:
            grad = rounded[:n].copy_(grad)
        dh[sl] = grad @ w
        if product is None:
            dW.addmm_(grad.t(), h_c)
        else:                                   # bf16 product, float32 sum over chunks
            dW.add_(torch.mm(grad.t(), h_c, out=product))
        db.add_(grad.sum(0, dtype=acc))
    return dh, dW.to(weight.dtype), db.to(bias.dtype)


class _HeadNELBO(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, targets, plan):
        x0, zt, alpha, dalpha = targets                 # (N,) each, no gradient
        K = weight.shape[0]
        with torch.autocast(device_type=h.device.type, enabled=False):
            lse, logit_i, logit_x, G, H = _forward_stats(h, weight, bias, x0, zt, alpha, plan)
        p_i, p_x = torch.exp(logit_i - lse.double()), torch.exp(logit_x - lse.double())
        loss, A, B, C = _scalar_terms(p_i, p_x, H, G, zt == x0, alpha, dalpha, K)
        ctx.save_for_backward(h, weight, bias, x0, zt, lse, alpha, p_i, p_x, G, A, B, C)
        ctx.plan = plan
        return loss.to(torch.promote_types(lse.dtype, torch.float32))

    @staticmethod
    def backward(ctx, grad_out):
        h, weight, bias, x0, zt, lse, *saved = ctx.saved_tensors
        coefs = _logit_grad_coefficients(saved, grad_out, weight.shape[0], lse.dtype)
        with torch.autocast(device_type=h.device.type, enabled=False):
            dh, dW, db = _backward_chunks(h, weight, bias, zt, x0, lse, coefs, ctx.plan)
        return dh, dW, db, None, None


def _product_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype nn.Linear would compute the logits in: the autocast dtype inside an autocast
    region of h's device, else the promoted dtype of h and the weight."""
    device = h.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(h.dtype, weight.dtype)


def head_nelbo_per_token(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         x0: torch.Tensor, zt: torch.Tensor, alpha_t: torch.Tensor,
                         dalpha_t: torch.Tensor, chunk_tokens: int | None = None) -> torch.Tensor:
    """Eq. (3) per token from the final hidden states: the value of
    ``fused_nelbo_per_token(h @ weight.T + bias, ...)``, without the (N, K) logits.

    Args:
        h: (N, d) hidden states just before the output Linear (:func:`dit_features`, flattened).
        weight, bias: (K, d) and (K,), the output Linear's parameters.
        x0, zt: (N,) int64 clean and noisy ids.
        alpha_t, dalpha_t: (N,) signal level (< 1) and its time derivative, per token.
        chunk_tokens: tokens per chunk (default :func:`default_chunk_tokens`).
    Returns:
        (N,) per-token loss, float32 (float64 for float64 inputs); differentiable with respect
        to h, weight and bias. Inside a bf16 autocast region the logits are bf16, as nn.Linear's.
    """
    N, K = h.shape[0], weight.shape[0]
    require(h.ndim == 2 and weight.ndim == 2 and h.shape[1] == weight.shape[1],
            f"h (N, d) and weight (K, d) do not match: {tuple(h.shape)}, {tuple(weight.shape)}")
    require(tuple(bias.shape) == (K,), f"bias must have shape ({K},); got {tuple(bias.shape)}")
    for name, v in (("x0", x0), ("zt", zt), ("alpha_t", alpha_t), ("dalpha_t", dalpha_t)):
        require(tuple(v.shape) == (N,), f"{name} must have shape ({N},); got {tuple(v.shape)}")
    rows = chunk_tokens or default_chunk_tokens(K, h.device.type)
    require(rows >= 1, f"chunk_tokens must be at least 1; got {rows}")
    plan = (_product_dtype(h, weight), rows)
    targets = (x0, zt, alpha_t.to(torch.float64), dalpha_t.to(torch.float64))
    return _HeadNELBO.apply(h, weight, bias, targets, plan)


def dit_features(model, zt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The final hidden states of a :class:`attractor.model.DiT` (the plain module, not a DDP or
    compiled wrapper): its forward pass without the output Linear (``DiT.features``), so
    ``model.output(dit_features(model, zt, sigma)) == model(zt, sigma)``.

    zt (B, L) int64, sigma (B,) -> (B, L, d); float32 (the final LayerNorm runs in float32) even
    under bf16 autocast.
    """
    return model.features(zt, sigma)
