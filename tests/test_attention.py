"""Rotary self-attention (attractor.model.attention): the composite routes against torch's fused
kernel, and the hand-written autograd function against the composite, float64 finite
differences and the float64 truth of its bf16 inputs."""

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


@pytest.mark.parametrize("causal", [False, True])
def test_bf16_route_rounds_float32_arithmetic_once(gen, causal, monkeypatch):
    """bf16 on a CPU takes the autograd function; its output and gradient are the float64 truth
    of the same bf16 values rounded once to bf16 (up to float32 arithmetic), like the composite
    route's, and under autocast nothing changes (its products stay in float32)."""
    qkv = packed(gen, torch.bfloat16).requires_grad_()
    grad_out = torch.randn(B, L, H * HD, generator=gen).bfloat16()
    out = rotary_attention(qkv, H, tables(), causal)
    assert type(out.grad_fn).__name__ == "_RotaryAttentionBackward"
    out.backward(grad_out)
    ref_out, ref_grad = _truth(qkv.detach(), grad_out, causal)
    half_ulp = 2.0 ** -8                                 # bf16: 8 significant bits
    for got, ref in ((out, ref_out), (qkv.grad, ref_grad)):
        assert got.dtype == torch.bfloat16
        err = (got.double() - ref).abs()
        assert bool((err <= half_ulp * ref.abs() * 1.01 + 1e-5 * ref.abs().max()).all())
    other = composite(qkv.detach().requires_grad_(), causal, monkeypatch)
    assert type(other.grad_fn).__name__ != "_RotaryAttentionBackward"
    assert (other.double() - ref_out).abs().max() <= 2 * half_ulp * ref_out.abs().max()
    grad, qkv.grad = qkv.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = rotary_attention(qkv, H, tables(), causal)
    again.backward(grad_out)
    assert torch.equal(again, out) and torch.equal(qkv.grad, grad)
