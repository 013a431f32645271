"""Rotary self-attention (attractor.model.attention): the composite routes against torch's fused
kernel, and the hand-written autograd function against the composite, float64 finite
differences, the float64 truth of its bf16 inputs and torch's fused bf16 kernel."""

import pytest
import torch

from attractor.model.attention import (
    _RotaryAttention,
    apply_rotary,
    attention,
    explicit_attention,
    rotary_attention,
    rotary_tables,
)

B, L, H, HD = 2, 9, 3, 8


def packed(gen, dtype=torch.float64, length=L):
    return torch.randn(B, length, 3 * H * HD, generator=gen, dtype=torch.float64).to(dtype)


def tables(dtype=torch.float32, length=L):
    return tuple(t.to(dtype) for t in rotary_tables(length, HD, "cpu"))


def composite(qkv, causal, monkeypatch):
    """The route torch.compile takes (apply_rotary, then attention), on the same inputs."""
    with monkeypatch.context() as m:
        m.setattr(torch.compiler, "is_compiling", lambda: True)
        return rotary_attention(qkv, H, tables(), causal)


def test_explicit_bf16_attention_matches_the_fused_kernel(gen):
    q, k, v = (torch.randn(2, 3, 17, 8, generator=gen, requires_grad=True) for _ in range(3))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.equal(attention(q, k, v), ref)                     # float32: the fused kernel
    low = [x.detach().bfloat16().requires_grad_() for x in (q, k, v)]
    out = attention(*low)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)
    out.float().square().sum().backward()
    ref.square().sum().backward()
    for a, b in zip(low, (q, k, v), strict=True):
        torch.testing.assert_close(a.grad.float(), b.grad, atol=5e-2, rtol=5e-2)


def test_rotary_in_float32_of_bf16_inputs_is_the_rotation_of_their_values(gen):
    """bf16 queries rotated in float32 (what the explicit attention consumes) equal the float32
    rotation of the same values exactly; explicit attention takes such queries unchanged."""
    x = torch.randn(2, 3, 16, 8, generator=gen).bfloat16()
    cos, sin = rotary_tables(16, 8, "cpu")
    out = apply_rotary(x, cos, sin, torch.float32)
    assert out.dtype == torch.float32 and torch.equal(out, apply_rotary(x.float(), cos, sin))
    assert apply_rotary(x, cos, sin).dtype == torch.bfloat16
    # a rotation keeps each half-pair's norm
    pairs = lambda y: y[..., :4].square() + y[..., 4:].square()          # noqa: E731
    torch.testing.assert_close(pairs(out), pairs(x.float()))
    v = torch.randn(2, 3, 16, 8, generator=gen).bfloat16()
    assert explicit_attention(v) and not explicit_attention(v.float())
    low = out.bfloat16()
    torch.testing.assert_close(attention(out, out, v).float(), attention(low, low, v).float(),
                               atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("causal", [False, True])
def test_fused_function_has_the_gradient_of_finite_differences(gen, causal):
    heads, hd, length = 2, 4, 5                          # 120 inputs: finite differences are cheap
    qkv = torch.randn(1, length, 3 * heads * hd, generator=gen, dtype=torch.float64)
    cos, sin = (t.double() for t in rotary_tables(length, hd, "cpu"))
    fn = lambda x: _RotaryAttention.apply(x, heads, cos, sin, causal)     # noqa: E731
    assert torch.autograd.gradcheck(fn, (qkv.requires_grad_(),))


@pytest.mark.parametrize("causal", [False, True])
def test_fused_function_equals_the_composite_in_float64(gen, causal):
    """Same values and gradients as rotary + torch's attention (the route float64 takes)."""
    qkv = packed(gen).requires_grad_()
    w = torch.randn(B, L, H * HD, generator=gen, dtype=torch.float64)
    grads = []
    for fused in (True, False):
        qkv.grad = None
        out = (_RotaryAttention.apply(qkv, H, *tables(torch.float64), causal) if fused
               else rotary_attention(qkv, H, tables(torch.float64), causal))
        (out * w).sum().backward()
        grads.append((out.detach(), qkv.grad.clone()))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _truth(qkv_low, grad_low, causal):
    """Output and input gradient in float64 of the bf16 values themselves."""
    x = qkv_low.double().requires_grad_()
    out = _RotaryAttention.apply(x, H, *tables(torch.float64), causal)
    out.backward(grad_low.double())
    return out.detach(), x.grad


def _weights(qkv_low, causal):
    """Float64 attention of bf16 inputs: the weights A (B, H, L, L), the values v, and the
    scaled, rotated queries and keys Q = R q / sqrt(hd), K = R k (B, H, L, hd)."""
    q, k, v = qkv_low.double().view(B, L, 3, H, HD).permute(2, 0, 3, 1, 4)
    cos, sin = tables(torch.float64)
    Q, K = apply_rotary(q, cos, sin) / HD ** 0.5, apply_rotary(k, cos, sin)
    scores = Q @ K.transpose(-1, -2)
    if causal:
        scores = scores.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1), v, Q, K


def _dq_dk_bounds(A, Q, K, v, dO, u):
    """Elementwise error bounds (B, L, H hd) of dq and dk: dQ = low(dS) low(K) errs by at most
    u (2 |dS| |K| + |dQ|) (two rounded operands, the rounded product), R^T adds the errors of a
    rotated pair (j, j + hd/2), the 1/sqrt(hd) of q scales them, and the result is rounded."""
    dA = dO @ v.transpose(-1, -2)
    dS = A * (dA - (dA * A).sum(-1, keepdim=True))
    dQ, dK = dS @ K, dS.transpose(-1, -2) @ Q
    out = []
    for d, other, e, scale in ((dQ, K, dS, HD ** -0.5), (dK, Q, dS.transpose(-1, -2), 1.0)):
        err = u * (2 * e.abs() @ other.abs() + d.abs())
        out.append((scale * (err + err.roll(HD // 2, dims=-1))).transpose(1, 2).reshape(B, L, -1))
    return out


def _fused_kernel(qkv, grad_out, causal):
    """torch's fused bf16 attention of the same inputs: output and input gradient."""
    x = qkv.detach().clone().requires_grad_()
    q, k, v = x.view(B, L, 3, H, HD).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, *tables()), apply_rotary(k, *tables())
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = out.transpose(1, 2).reshape(B, L, H * HD)
    out.backward(grad_out)
    return out.detach(), x.grad


def _relative(a, b):
    return float((a.detach().double() - b).norm() / b.norm())


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_route_errs_only_by_flash_attention_roundings(gen, causal, monkeypatch):
    """bf16 on a CPU takes the autograd function. Against the float64 truth of the same bf16
    values, every output errs only by the roundings of FlashAttention's scheme: the output by
    u (|A| |v| + |truth|) elementwise (|A|^T |dO| for dv), u = 2^-8, and dq, dk by the bounds
    of :func:`_dq_dk_bounds` (the score gradient dS rounded, not the dA it is formed from: the
    values share a large part, so dA - rowsum(dA A) cancels). The composite route (torch.compile's)
    stays all float32, and under autocast nothing changes."""
    qkv = packed(gen).view(B, L, 3, H * HD)
    qkv[:, :, 2] = qkv[:, :, 2] / 4 + 4
    qkv = qkv.view(B, L, -1).bfloat16().requires_grad_()
    grad_out = torch.randn(B, L, H * HD, generator=gen).bfloat16()
    out = rotary_attention(qkv, H, tables(), causal)
    assert type(out.grad_fn).__name__ == "_RotaryAttentionBackward"
    out.backward(grad_out)
    assert out.dtype == qkv.grad.dtype == torch.bfloat16
    ref_out, ref_grad = _truth(qkv.detach(), grad_out, causal)
    A, v, Q, K = _weights(qkv.detach(), causal)
    dO = grad_out.double().view(B, L, H, HD).transpose(1, 2)
    u, slack = 2.0 ** -8, 1e-5
    scale_out = (A.abs() @ v.abs()).transpose(1, 2).reshape(B, L, H * HD)
    scale_dv = (A.abs().transpose(-1, -2) @ dO.abs()).transpose(1, 2).reshape(B, L, H * HD)
    bound_dq, bound_dk = _dq_dk_bounds(A, Q, K, v, dO, u)
    grads, truths = qkv.grad.view(B, L, 3, H * HD), ref_grad.view(B, L, 3, H * HD)
    for got, ref, bound in ((out, ref_out, u * scale_out),
                            (grads[:, :, 0], truths[:, :, 0], bound_dq),
                            (grads[:, :, 1], truths[:, :, 1], bound_dk),
                            (grads[:, :, 2], truths[:, :, 2], u * scale_dv)):
        err = (got.double() - ref).abs()
        assert bool((err <= bound + u * ref.abs() + slack * ref.abs().max()).all())
    other = composite(qkv.detach().requires_grad_(), causal, monkeypatch)
    assert type(other.grad_fn).__name__ != "_RotaryAttentionBackward"
    assert (other.double() - ref_out).abs().max() <= u * ref_out.abs().max()
    grad, qkv.grad = qkv.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = rotary_attention(qkv, H, tables(), causal)
    again.backward(grad_out)
    assert torch.equal(again, out) and torch.equal(qkv.grad, grad)


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_route_is_at_least_as_accurate_as_torchs_fused_kernel(gen, causal):
    """On random inputs, the output and each of dq, dk, dv of the bf16 route are no further
    from the float64 truth (relative Frobenius error) than those of torch's fused bf16 kernel
    (here 2-4x closer: the kernel rounds more of its intermediates)."""
    qkv = packed(gen, torch.bfloat16).requires_grad_()
    grad_out = torch.randn(B, L, H * HD, generator=gen).bfloat16()
    out = rotary_attention(qkv, H, tables(), causal)
    out.backward(grad_out)
    ref_out, ref_grad = _truth(qkv.detach(), grad_out, causal)
    kernel_out, kernel_grad = _fused_kernel(qkv, grad_out, causal)
    assert _relative(out, ref_out) <= _relative(kernel_out, ref_out)
    ours, theirs, truth = (g.view(B, L, 3, H * HD) for g in (qkv.grad, kernel_grad, ref_grad))
    for i in range(3):
        assert _relative(ours[:, :, i], truth[:, :, i]) <= _relative(theirs[:, :, i], truth[:, :, i])
