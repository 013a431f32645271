"""The NELBO of eq. (3) fused with the softmax: no K-wide tensor beyond the logits themselves.

Same value as :func:`attractor.loss.nelbo_per_token` (the reference), computed from the logits in
chunks of tokens, with a hand-written backward pass. Per token, with p = softmax(logits),
beta = K a / (1 - a), h_j = log1p(beta p_j) (so log xbar_theta_j = log(1 - a) + h_j):

    forward:  lse, p_i = p[z_t], p_x = p[x0],  H = sum_j h_j,  G = sum_j g_j,  g_j = beta p_j / (1 + beta p_j)
    loss:     L(f_i, f_x, T) of loss.py with f = log(1 - a) + h and T = K log(1 - a) + H
    backward: dL/dlogit_k = A g_i (d_ik - p_k) + B g_x (d_xk - p_k) + C (g_k - p_k G),
              A = dL/df_i, B = dL/df_x, C = dL/dT  (per-token scalars, float64)

The K-wide sums H and G are row sums of non-negative terms; shifting log xbar_theta by log(1 - a) keeps
them small, so the large terms that cancel at small t are handled in float64 scalars only.
"""

from __future__ import annotations

import torch

from attractor.softmax_rows import exp_, fast_route, shift_by_row_max

# Tokens per chunk x K: 4 MiB of float32 per temporary, small enough for any allocator to reuse
# (larger blocks are mmap-ed afresh and page-fault on every step with glibc malloc).
CHUNK_ELEMENTS = 1 << 20


def _chunks(n: int, vocab: int, whole: bool):
    size = max(1, n if whole else CHUNK_ELEMENTS // vocab)
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _stats_kernel(logits: torch.Tensor, beta: torch.Tensor):
    """(n, K) logits, (n,) beta -> lse, G = sum_j g_j, H = sum_j h_j, each (n,), in the working
    precision (float32, or float64 for float64 logits)."""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    lse = torch.logsumexp(x, dim=-1)
    bp = torch.exp(x - lse[:, None]) * beta[:, None]                    # beta p
    return lse, (bp / (1 + bp)).sum(-1), torch.log1p(bp).sum(-1)


def _grad_kernel(logits, lse, beta, coef_p, coef_g, hot):
    """dL/dlogit_k = coef_p p_k + coef_g g_k + hot_i [k = z_t] + hot_x [k = x0] for every
    (token, k), in the working precision, rounded to the logits' dtype at the end;
    hot = (zt, x0, hot_i, hot_x), each (n,)."""
    zt, x0, hot_i, hot_x = hot
    p = torch.exp(logits.to(lse.dtype) - lse[:, None])
    bp = p * beta[:, None]
    k = torch.arange(logits.shape[-1], device=logits.device)
    hot = (k == zt[:, None]) * hot_i[:, None] + (k == x0[:, None]) * hot_x[:, None]
    return (p * coef_p[:, None] + bp / (1 + bp) * coef_g[:, None] + hot).to(logits.dtype)


def _stats_chunk(x, beta, b1, b2, with_g: bool = True):
    """:func:`_stats_kernel` on one chunk in two preallocated (n, K) buffers of the working dtype,
    with no allocation: p = exp(x - m) / Z, h = log1p(beta p), g = beta p / (1 + beta p). Without
    ``with_g`` (no gradient wanted: G only enters the backward pass) G is None and three K-wide
    passes are saved."""
    m = shift_by_row_max(x, b1)
    exp_(b1, fast_route(x, b1))                                          # exp(x - m)
    z = b1.sum(-1, keepdim=True)
    b1.mul_(beta[:, None] / z)                                           # beta p
    if not with_g:
        return (m + z.log()).squeeze(-1), None, b1.log1p_().sum(-1)
    h_sum = torch.log1p(b1, out=b2).sum(-1)
    g_sum = b1.div_(torch.add(b1, 1.0, out=b2)).sum(-1)
    return (m + z.log()).squeeze(-1), g_sum, h_sum


def _grad_chunk(x, lse, beta, coef_p, coef_g, b1, b2):
    """:func:`_grad_kernel` on one chunk into buffer ``b1`` (``b2`` is scratch); returns b1:
    coef_p p + coef_g g = p (coef_p + coef_g beta / (1 + beta p))."""
    torch.sub(x, lse[:, None], out=b1).exp_()                            # p
    torch.mul(b1, beta[:, None], out=b2).add_(1.0)                       # 1 + beta p
    torch.div((coef_g * beta)[:, None], b2, out=b2).add_(coef_p[:, None])
    return b1.mul_(b2)


def _buffers(n: int, K: int, dtype, device):
    rows = min(n, max(1, CHUNK_ELEMENTS // K))
    return [torch.empty(rows, K, dtype=dtype, device=device) for _ in range(2)]


_COMPILED: dict = {}


def _compiled_kernels():
    """The pure kernels through torch.compile: one fused loop over the whole tensor each, no
    temporaries (compiled on first use). Eager runs use the in-place chunk versions instead."""
    if not _COMPILED:
        _COMPILED["stats"] = torch.compile(_stats_kernel, dynamic=None)
        _COMPILED["grad"] = torch.compile(_grad_kernel, dynamic=None)
    return _COMPILED["stats"], _COMPILED["grad"]


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


def nelbo_rows(x0: torch.Tensor, zt: torch.Tensor, alpha: torch.Tensor, dalpha: torch.Tensor):
    """Row kernel of eq. (3) for :func:`attractor.head_loss.head_loss`: the loss above and
    D = dL/dlogit per row, each K-wide term formed once. x0, zt (N,) int64; alpha, dalpha (N,)
    float64, per token."""

    def kernel(x, rows, scratch, out):
        K = x.shape[-1]
        e_buf, g_buf, tmp = scratch
        if out is not None and out.dtype == e_buf.dtype:
            e_buf = out                                    # D is formed in place
        a = alpha[rows]
        beta = K * a / (1 - a)
        m = shift_by_row_max(x, e_buf)
        e = exp_(e_buf, fast_route(x, e_buf))                               # p = e / z
        z = e.sum(-1, keepdim=True)
        lse = (m + z.log()).squeeze(-1).double()
        bp = torch.mul(e, beta.to(e.dtype)[:, None] / z, out=g_buf)         # beta p
        H = torch.log1p(bp, out=tmp).sum(-1).double()
        g = bp.div_(torch.add(bp, 1.0, out=tmp))                            # g
        G = g.sum(-1).double()
        i, x_ = zt[rows], x0[rows]
        p_i = torch.exp(x.gather(-1, i[:, None])[:, 0].double() - lse)
        p_x = torch.exp(x.gather(-1, x_[:, None])[:, 0].double() - lse)
        loss, A, B, C = _scalar_terms(p_i, p_x, H, G, i == x_, a, dalpha[rows], K)
        if out is None:
            return loss
        g_i, g_x = beta * p_i / (1 + beta * p_i), beta * p_x / (1 + beta * p_x)
        # D = coef_p p + C g + A g_i [k = z_t] + B g_x [k = x0], coef_p = -(A g_i + B g_x + C G)
        coef_p = -(A * g_i + B * g_x + C * G)
        e.mul_(coef_p.to(e.dtype)[:, None] / z).addcmul_(g, C.to(e.dtype)[:, None])
        idx = torch.arange(e.shape[0], device=e.device)
        e.index_put_((idx, i), (A * g_i).to(e.dtype), accumulate=True)
        e.index_put_((idx, x_), (B * g_x).to(e.dtype), accumulate=True)
        if e is not out:
            out.copy_(e)                                   # rounded once, to the product dtype
        return loss

    return kernel


class _FusedNELBO(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, x0, zt, alpha, dalpha, compiled):
        N, K = logits.shape
        work = torch.promote_types(logits.dtype, torch.float32)          # bf16 logits: float32
        lse = torch.empty(N, dtype=work, device=logits.device)
        H = torch.empty(N, dtype=torch.float64, device=logits.device)
        G = torch.zeros(N, dtype=torch.float64, device=logits.device)
        beta_w = (K * alpha / (1 - alpha)).to(work)
        stats = _compiled_kernels()[0] if compiled else None
        bufs = None if compiled else _buffers(N, K, work, logits.device)
        with_g = ctx.needs_input_grad[0]                 # G is needed by the backward pass only
        for sl in _chunks(N, K, whole=compiled):
            # G and H are row sums of non-negative terms: exact to ~1e-7 relative in float32
            if compiled:
                lse[sl], g_sum, h_sum = stats(logits[sl], beta_w[sl])
            else:
                n = sl.stop - sl.start
                lse[sl], g_sum, h_sum = _stats_chunk(logits[sl], beta_w[sl],
                                                     *(b[:n] for b in bufs), with_g=with_g)
            H[sl] = h_sum.double()
            if g_sum is not None:
                G[sl] = g_sum.double()
        logit_i = logits.gather(-1, zt[:, None])[:, 0].double()
        logit_x = logits.gather(-1, x0[:, None])[:, 0].double()
        p_i, p_x = torch.exp(logit_i - lse.double()), torch.exp(logit_x - lse.double())
        same = zt == x0
        loss, A, B, C = _scalar_terms(p_i, p_x, H, G, same, alpha, dalpha, K)
        ctx.save_for_backward(logits, x0, zt, lse, alpha, p_i, p_x, G, A, B, C)
        ctx.compiled = compiled
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
        beta_w = beta.to(work)
        grad_kernel = _compiled_kernels()[1] if ctx.compiled else None
        # The two one-hot terms, one entry per row, added in the working precision before the
        # gradient is rounded to the logits' dtype (index_put_: scatter_add_ on a bf16 tensor
        # converts the whole (N, K) tensor to float32 and back).
        hot_i, hot_x = (A * g_i * go).to(work), (B * g_x * go).to(work)
        grad = torch.empty(N, K, dtype=logits.dtype, device=logits.device)
        bufs = None if ctx.compiled else _buffers(N, K, work, logits.device)
        for sl in _chunks(N, K, whole=ctx.compiled):
            args = (logits[sl], lse[sl], beta_w[sl], coef_p[sl], coef_g[sl])
            if ctx.compiled:
                grad[sl] = grad_kernel(*args, (zt[sl], x0[sl], hot_i[sl], hot_x[sl]))
                continue
            chunk = _grad_chunk(*args, *(b[: sl.stop - sl.start] for b in bufs))
            rows = torch.arange(chunk.shape[0], device=chunk.device)
            chunk.index_put_((rows, zt[sl]), hot_i[sl], accumulate=True)
            chunk.index_put_((rows, x0[sl]), hot_x[sl], accumulate=True)
            grad[sl] = chunk
        return grad, None, None, None, None, None


def fused_nelbo_per_token(logits: torch.Tensor, x0: torch.Tensor, zt: torch.Tensor,
                          alpha_t: torch.Tensor, dalpha_t: torch.Tensor,
                          compiled: bool = False, rows: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """Eq. (3) per token straight from the logits (any float dtype, e.g. bf16 under autocast).

    Args:
        logits: (B, L, K) denoiser outputs (softmax = x_theta); or, with ``rows``, the (n, K)
            logits of those positions only (row-major, :func:`attractor.sampler.logits_at`).
        x0, zt: (B, L) int64 clean and noisy ids.
        alpha_t, dalpha_t: (B,) signal level (< 1) and its time derivative.
        compiled: run the K-wide kernels through torch.compile (one fused loop each; the first
            call compiles them).
        rows: (B, L) bool, the positions whose loss is wanted (e.g. a probe's real tokens); the
            loss is 0 at the others, which are never computed. Default: every position.
    Returns:
        (B, L) per-token loss, float32 (float64 for float64 logits); differentiable with respect
        to ``logits``.
    """
    B, L = x0.shape
    K = logits.shape[-1]
    alpha = alpha_t.to(torch.float64)[:, None].expand(B, L).reshape(-1)
    dalpha = dalpha_t.to(torch.float64)[:, None].expand(B, L).reshape(-1)
    per_token = (x0.reshape(-1), zt.reshape(-1), alpha, dalpha)
    if rows is not None:
        keep = rows.reshape(-1)
        per_token = tuple(a[keep] for a in per_token)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        loss = _FusedNELBO.apply(logits.reshape(-1, K), *per_token, compiled)
    if rows is None:
        return loss.view(B, L)
    return loss.new_zeros(B, L).index_put((rows,), loss)
