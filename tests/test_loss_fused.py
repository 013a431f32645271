import pytest
import torch

from attractor import loss_fused
from attractor.loss import nelbo_per_token
from attractor.loss_fused import fused_nelbo_per_token


def _case(gen, K, dtype, B=3, L=7):
    logits = (3 * torch.randn(B, L, K, generator=gen, dtype=torch.float64)).to(dtype)
    x0 = torch.randint(0, K, (B, L), generator=gen)
    zt = torch.where(torch.rand(B, L, generator=gen) < 0.5, x0,
                     torch.randint(0, K, (B, L), generator=gen))
    t = torch.tensor([1e-3, 0.3, 0.999])[:B]
    alpha = (1 - 0.999 * t).to(torch.float64)
    dalpha = torch.full((B,), -0.999, dtype=torch.float64)
    return logits, x0, zt, alpha, dalpha


def _value_and_grad(fn, logits, x0, zt, alpha, dalpha, weights):
    logits = logits.clone().requires_grad_(True)
    loss = fn(logits, x0, zt, alpha, dalpha)
    (grad,) = torch.autograd.grad((loss * weights).sum(), logits)
    return loss.detach(), grad


def _reference(logits, x0, zt, alpha, dalpha):
    return nelbo_per_token(torch.log_softmax(logits, -1), x0, zt, alpha, dalpha)


@pytest.mark.parametrize("K", [2, 7, 301])
def test_fused_matches_reference_in_float64(gen, K, monkeypatch):
    monkeypatch.setattr(loss_fused, "CHUNK_ELEMENTS", 5 * K)       # several chunks
    case = _case(gen, K, torch.float64)
    w = torch.rand(case[1].shape, generator=gen, dtype=torch.float64)
    ref, ref_grad = _value_and_grad(_reference, *case, w)
    out, grad = _value_and_grad(fused_nelbo_per_token, *case, w)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_fused_float32_matches_float64_reference(gen):
    K = 1000
    logits, x0, zt, alpha, dalpha = _case(gen, K, torch.float64)
    w = torch.rand(x0.shape, generator=gen, dtype=torch.float64)
    ref, ref_grad = _value_and_grad(_reference, logits, x0, zt, alpha, dalpha, w)
    out, grad = _value_and_grad(fused_nelbo_per_token, logits.float(), x0, zt, alpha.float(),
                                dalpha.float(), w.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-6)


def test_fused_gradcheck(gen):
    case = _case(gen, 5, torch.float64, B=2, L=3)
    logits = case[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: fused_nelbo_per_token(z, *case[1:]), (logits,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_without_a_gradient_the_loss_is_unchanged(gen, dtype, monkeypatch):
    """Evaluation (no gradient wanted) skips G, a sum that only the backward pass uses: the
    loss is bit-for-bit the loss of a differentiable call."""
    monkeypatch.setattr(loss_fused, "CHUNK_ELEMENTS", 4 * 301)
    case = _case(gen, 301, dtype)
    with torch.no_grad():
        evaluated = fused_nelbo_per_token(*case)
    trained = fused_nelbo_per_token(case[0].clone().requires_grad_(True), *case[1:])
    assert torch.equal(evaluated, trained.detach())


@pytest.mark.slow
def test_compiled_kernels_give_the_same_loss_and_gradient(gen):
    """torch.compile of the K-wide kernels changes speed, not results (first call compiles)."""
    case = _case(gen, 257, torch.float32, B=3, L=5)
    w = torch.rand(case[1].shape, generator=gen)
    eager = _value_and_grad(fused_nelbo_per_token, *case, w)
    compiled = _value_and_grad(lambda *a: fused_nelbo_per_token(*a, compiled=True), *case, w)
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_bf16_logits_are_read_in_float32(gen, monkeypatch):
    """bf16 logits (autocast): with torch's exp, the loss is the float32 loss of the same values
    and the gradient that gradient rounded to bf16; on the faster exp2 route of bf16 logits
    (softmax_rows.fast_route) the loss moves by ~1e-7 and the gradient by at most one bf16 ulp."""
    monkeypatch.setattr(loss_fused, "CHUNK_ELEMENTS", 4 * 301)
    logits, *rest = _case(gen, 301, torch.bfloat16)
    w = torch.rand(rest[0].shape, generator=gen)
    ref, ref_grad = _value_and_grad(fused_nelbo_per_token, logits.float(), *rest, w)
    out, grad = _value_and_grad(fused_nelbo_per_token, logits, *rest, w)
    assert out.dtype == torch.float32 and grad.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    ulp = ref_grad.abs().bfloat16().float() * 2.0**-7 + 1e-30
    assert bool(((grad.float() - ref_grad.bfloat16().float()).abs() <= ulp).all())
    monkeypatch.setattr(loss_fused, "fast_route", lambda chunk, out: False)
    out, grad = _value_and_grad(fused_nelbo_per_token, logits, *rest, w)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    assert torch.equal(grad, ref_grad.bfloat16())         # one-hot terms added before rounding


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_rows_give_the_loss_of_those_positions_and_zero_elsewhere(gen, dtype, monkeypatch):
    """Only the positions asked for (a probe's real tokens), given their logits alone: the same
    values and gradients there as from every position, and 0 at the others."""
    monkeypatch.setattr(loss_fused, "CHUNK_ELEMENTS", 4 * 301)          # several chunks
    case = _case(gen, 301, dtype)
    rows = torch.rand(case[1].shape, generator=gen) < 0.4
    w = torch.rand(case[1].shape, generator=gen, dtype=torch.float64).to(dtype)
    full, full_grad = _value_and_grad(fused_nelbo_per_token, *case, w)
    out, grad = _value_and_grad(lambda lg, *a: fused_nelbo_per_token(lg[rows], *a, rows=rows),
                                *case, w)
    tol = {"rtol": 1e-6, "atol": 1e-9} if dtype == torch.float64 else {}   # float32 sums' order
    torch.testing.assert_close(out[rows], full[rows], **tol)
    assert bool((out[~rows] == 0).all())
    torch.testing.assert_close(grad[rows], full_grad[rows], **tol)
    assert bool((grad[~rows] == 0).all())


def test_no_rows_and_all_rows(gen):
    """No position asked for: zeros, also through the whole-tensor (compiled) chunking; every
    position asked for: the plain result."""
    case = _case(gen, 7, torch.float64)
    none = torch.zeros(case[1].shape, dtype=torch.bool)
    logits = case[0]
    assert bool((fused_nelbo_per_token(logits[none], *case[1:], rows=none) == 0).all())
    assert list(loss_fused._chunks(0, 7, whole=True)) == []
    assert torch.equal(fused_nelbo_per_token(logits[~none], *case[1:], rows=~none),
                       fused_nelbo_per_token(*case))
