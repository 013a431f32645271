"""Rotary self-attention of the DiT blocks (docs/notation.md §5), from packed queries, keys, values.

Per head, with the NeoX rotate-half rotary embedding R_l at position l (pairs of dims j, j + hd/2
rotated by the angle l w_j, w_j = 10^4^(-2j/hd)):

    q'_l = R_l q_l,  k'_l = R_l k_l,   A = softmax(q' k'^T / sqrt(hd)),   out = A v

bidirectional (the denoiser) or causal (the autoregressive baseline, future positions masked).

Three routes compute it:
- torch's fused kernel (``F.scaled_dot_product_attention``) everywhere but bf16 on a CPU;
- for bf16 on a CPU at L <= 128, where that kernel's backward is slow, the attention written out:
  - in eager mode, as one autograd function with a hand-written backward (``_RotaryAttention``)
    with FlashAttention's precision (scores, softmax and its backward in float32, the products
    with probabilities and score gradients in bf16 with float32 accumulation): 1/sqrt(hd) rides
    on the rotation of q, and each tensor is laid out once for the batched products, instead of
    the dozen elementwise operators, casts and copies of the composite;
  - under torch.compile, as the composite of :func:`apply_rotary` and :func:`attention`, all in
    float32 (only the result is rounded to bf16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Longest sequence for which bf16 attention on a CPU is computed explicitly (see ``attention``).
EXPLICIT_ATTENTION_MAX_LENGTH = 128


def rotary_tables(length: int, head_dim: int, device, base: float = 1e4) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables (L, head_dim) for NeoX-style rotate-half rotary embeddings."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    angles = torch.outer(torch.arange(length, device=device).float(), inv_freq)   # (L, hd/2)
    angles = torch.cat([angles, angles], dim=-1)                                   # (L, hd)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rotate (B, H, L, hd) queries or keys: x cos + rotate_half(x) sin, in ``dtype`` (default:
    x's; float32 for bf16 x saves the separate conversion of explicit attention)."""
    dtype = dtype or x.dtype
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos.to(dtype) + torch.cat([-x2, x1], dim=-1) * sin.to(dtype)


def explicit_attention(v: torch.Tensor, length: int | None = None) -> bool:
    """Whether attention is written out (not torch's fused kernel) for these values (B, H, L, hd),
    or a tensor of theirs at sequence length ``length``: bf16 on a CPU with
    L <= EXPLICIT_ATTENTION_MAX_LENGTH."""
    length = v.shape[-2] if length is None else length
    return (v.device.type == "cpu" and v.dtype == torch.bfloat16
            and length <= EXPLICIT_ATTENTION_MAX_LENGTH)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(hd)) v, bidirectional or causal: (B, H, L, hd) each -> (B, H, L, hd).

    torch's fused kernel everywhere except bf16 on a CPU with L <= 128: there the fused kernel's
    bf16 backward is slow, and the same attention written out in float32 (scores, softmax and
    the product with v; only the result is rounded to bf16) is faster, forward and backward, at
    32 x 8 heads x L = 128, and so is the autograd function of :func:`rotary_attention`; from
    L = 256 on both are slower (benchmarks/kernels.py), hence the cut-off.
    """
    if not explicit_attention(v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    with torch.autocast(device_type="cpu", enabled=False):
        scores = (q.float() @ k.float().transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # (B, H, L, L)
        if causal:
            scores = scores.masked_fill(_future(q.shape[-2], q.device), float("-inf"))
        return (scores.softmax(dim=-1) @ v.float()).to(v.dtype)


def _future(length: int, device) -> torch.Tensor:
    """(L, L) bool, True above the diagonal: the positions a causal query may not see."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def rotary_attention(qkv: torch.Tensor, heads: int, rotary: tuple[torch.Tensor, torch.Tensor],
                     causal: bool = False) -> torch.Tensor:
    """The block's attention: qkv (B, L, 3d), the output of its packed projection, and the
    ``rotary_tables`` of length L -> (B, L, d), the heads' outputs side by side."""
    B, L, three_d = qkv.shape
    d = three_d // 3
    explicit = explicit_attention(qkv, L)
    if explicit and not torch.compiler.is_compiling():
        return _RotaryAttention.apply(qkv, heads, *rotary, causal)
    q, k, v = qkv.view(B, L, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
    rot = torch.float32 if explicit else None
    q, k = apply_rotary(q, *rotary, rot), apply_rotary(k, *rotary, rot)  # (B, H, L, hd)
    return attention(q, k, v, causal).transpose(1, 2).reshape(B, L, d)


def _rotate(x: torch.Tensor, c: torch.Tensor, s: torch.Tensor, out: torch.Tensor,
            sign: float) -> torch.Tensor:
    """Rotate-half rotation of x (..., hd) into ``out``: with x = [x1, x2] and angle tables c, s
    (..., hd/2), out = [x1 c - x2 s, x2 c + x1 s] for sign = 1 (R x), and the transposed
    rotation [x1 c + x2 s, x2 c - x1 s] for sign = -1 (R^T x, the backward pass)."""
    x1, x2 = x.chunk(2, dim=-1)
    o1, o2 = out.chunk(2, dim=-1)
    torch.mul(x1, c, out=o1).addcmul_(x2, s, value=-sign)
    torch.mul(x2, c, out=o2).addcmul_(x1, s, value=sign)
    return out


def _half_tables(cos: torch.Tensor, sin: torch.Tensor, scale: float, dtype):
    """The (L, hd) tables as (2, 1, 1, L, hd/2) halves for the stacked (q, k): q's scaled by
    1/sqrt(hd), so that q' k'^T are the scores."""
    half = cos.shape[-1] // 2
    c, s = cos[:, :half].to(dtype), sin[:, :half].to(dtype)
    return (torch.stack([c * scale, c])[:, None, None], torch.stack([s * scale, s])[:, None, None])


class _RotaryAttention(torch.autograd.Function):
    """Explicit rotary attention with FlashAttention's precision: the scores, the softmax and
    its backward in the working precision w = float32 (float64 for float64 inputs); the four
    products with a probability or score gradient in qkv's dtype (bf16 operands, float32
    accumulation, as FlashAttention and torch's fused kernel multiply them). With
    Q = R q / sqrt(hd), K = R k (B H, L, hd), A = softmax(Q K^T) and out = A V:

        forward   S = Q K^T (w),  A = softmax(S) (w),  out = low(A) V
        backward  dA = dO V^T (w),  dS = A (dA - rowsum(dA A)) (w),
                  dV = low(A)^T dO,  dQ = low(low(dS) low(K)),  dK = low(low(dS)^T low(Q)),
                  dq = low(R^T dQ / sqrt(hd)),  dk = low(R^T dK)

    where low() rounds to qkv's dtype (for float64 inputs it rounds nothing, and every step is
    float64). The low-precision products run 2.5-4x faster than float32 ones on a CPU with
    bf16 instructions.
    """

    @staticmethod
    def forward(ctx, qkv, heads, cos, sin, causal):
        B, L, three_d = qkv.shape
        hd = three_d // 3 // heads
        work = torch.promote_types(qkv.dtype, torch.float32)
        c, s = _half_tables(cos, sin, hd ** -0.5, work)
        with torch.autocast(device_type=qkv.device.type, enabled=False):
            x = qkv.view(B, L, 3, heads, hd).permute(2, 0, 3, 1, 4)          # (3, B, H, L, hd)
            qk = torch.empty(2, B, heads, L, hd, dtype=work, device=qkv.device)
            qk.copy_(x[:2])                                                   # widened once
            v = torch.empty(B, heads, L, hd, dtype=qkv.dtype, device=qkv.device)
            v.copy_(x[2])                                                     # laid out once
            rot = _rotate(qk, c, s, torch.empty_like(qk), 1.0)                # (Q, K)
            Q, K, V = (y.view(B * heads, L, hd) for y in (rot[0], rot[1], v))
            scores = torch.bmm(Q, K.transpose(1, 2))                          # (B H, L, L)
            if causal:
                scores.masked_fill_(_future(L, qkv.device), float("-inf"))
            A = scores.softmax(dim=-1)
            P = A.to(qkv.dtype)
            out = torch.empty(B, L, heads, hd, dtype=qkv.dtype, device=qkv.device)
            out.copy_(torch.bmm(P, V).view(B, heads, L, hd).transpose(1, 2))
        ctx.save_for_backward(rot, V, A, P, c, s)
        return out.view(B, L, heads * hd)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        rot, V, A, P, c, s = ctx.saved_tensors
        _, B, H, L, hd = rot.shape
        low = P.dtype
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            dO = torch.empty(B, H, L, hd, dtype=low, device=rot.device)
            dO.copy_(grad_out.reshape(B, L, H, hd).transpose(1, 2))
            dO = dO.view(B * H, L, hd)
            dA = torch.bmm(dO.to(rot.dtype), V.to(rot.dtype).transpose(1, 2))  # (w)
            dS = torch._softmax_backward_data(dA, A, -1, A.dtype).to(low)
            Q, K = (r.view(B * H, L, hd).to(low) for r in rot)
            d_rot = torch.empty_like(rot)
            d_rot[0].view(B * H, L, hd).copy_(torch.bmm(dS, K))
            d_rot[1].view(B * H, L, hd).copy_(torch.bmm(dS.transpose(1, 2), Q))
            grad = torch.empty(B, L, 3, H, hd, dtype=low, device=grad_out.device)
            g = grad.permute(2, 0, 3, 1, 4)                                   # (3, B, H, L, hd)
            g[:2].copy_(_rotate(d_rot, c, s, torch.empty_like(rot), -1.0))    # (dq, dk)
            g[2].copy_(torch.bmm(P.transpose(1, 2), dO).view(B, H, L, hd))    # dv
        return grad.view(B, L, 3 * H * hd), None, None, None, None
