"""The fused head-and-loss step against the logits path (h W^T + b, then loss_fused)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from attractor import head_loss
from attractor.errors import UserError
from attractor.head_loss import dit_features, head_nelbo_per_token
from attractor.loss_fused import fused_nelbo_per_token
from attractor.model import DiT, get_model_config

BF16_UNIT = 2.0**-8          # bf16 keeps 8 significant bits: a rounding is within this, relative


def _case(gen, N=37, d=8, K=29, dtype=torch.float64):
    h = torch.randn(N, d, generator=gen, dtype=torch.float64).to(dtype)
    weight = (torch.randn(K, d, generator=gen, dtype=torch.float64) / d**0.5).to(dtype)
    bias = torch.randn(K, generator=gen, dtype=torch.float64).to(dtype)
    x0 = torch.randint(0, K, (N,), generator=gen)
    zt = torch.where(torch.rand(N, generator=gen) < 0.5, x0, torch.randint(0, K, (N,), generator=gen))
    t = torch.rand(N, generator=gen, dtype=torch.float64) * (1 - 1e-3) + 1e-3
    t[:3] = torch.tensor([1e-3, 0.5, 1.0])                       # the ends, where terms cancel
    alpha, dalpha = 1 - 0.999 * t, torch.full((N,), -0.999, dtype=torch.float64)
    return (h, weight, bias), (x0, zt, alpha, dalpha)


def _logits_path(h, weight, bias, x0, zt, alpha, dalpha):
    """The path this replaces: the (N, K) logits, then loss_fused (one token per 'sequence', so
    alpha can differ per token)."""
    logits = F.linear(h, weight, bias)
    return fused_nelbo_per_token(logits[:, None], x0[:, None], zt[:, None], alpha, dalpha)[:, 0]


def _value_and_grads(fn, params, rest, weights, amp=False):
    params = [p.clone().requires_grad_(True) for p in params]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = fn(*params, *rest)
    grads = torch.autograd.grad((loss * weights).sum(), params)
    return loss.detach(), grads


@pytest.mark.parametrize("chunk", [37, 1, 4, 10, 100])       # whole, divides N or not, > N
def test_float64_matches_the_logits_path(gen, chunk):
    params, rest = _case(gen)
    w = torch.rand(rest[0].shape, generator=gen, dtype=torch.float64)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w)
    out, grads = _value_and_grads(lambda *a: head_nelbo_per_token(*a, chunk_tokens=chunk),
                                  params, rest, w)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == torch.float64
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_float32_matches_the_logits_path(gen):
    params, rest = _case(gen, N=50, d=16, K=301, dtype=torch.float32)
    w = torch.rand(rest[0].shape, generator=gen)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w)
    out, grads = _value_and_grads(lambda *a: head_nelbo_per_token(*a, chunk_tokens=7),
                                  params, rest, w)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def _exact_grads(params, rest, weights):
    """dL/dlogits of the bf16 logits path, then its three products in float64, with the bounds
    that a bf16 rounding of each term allows: |D|^T |h|, |D| |W| and sum |D|."""
    h, weight, bias = params
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.linear(h, weight, bias).detach().requires_grad_(True)
    loss = fused_nelbo_per_token(logits[:, None], *(v[:, None] for v in rest[:2]), *rest[2:])
    (D,) = torch.autograd.grad((loss[:, 0] * weights).sum(), logits)
    D, hb, wb = D.double(), h.bfloat16().double(), weight.bfloat16().double()
    exact = (D @ wb, D.T @ hb, D.sum(0))
    scale = (D.abs() @ wb.abs(), D.T.abs() @ hb.abs(), D.abs().sum(0))
    return exact, scale


def test_bf16_autocast_matches_to_bf16_rounding(gen):
    """Under autocast the logits are bf16 (as nn.Linear's): the loss matches the logits path;
    each gradient is within bf16 rounding of the exact products of the same dL/dlogits, as the
    logits path's own gradients are."""
    params, rest = _case(gen, N=300, d=32, K=501, dtype=torch.float32)
    w = torch.rand(rest[0].shape, generator=gen)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w, amp=True)
    out, grads = _value_and_grads(lambda *a: head_nelbo_per_token(*a, chunk_tokens=7),
                                  params, rest, w, amp=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=2 * BF16_UNIT, atol=1e-4)
    exact, scale = _exact_grads(params, rest, w)
    for g, r, e, s in zip(grads, ref_grads, exact, scale, strict=True):
        assert g.dtype == torch.float32
        assert ((r.double() - e).abs() <= BF16_UNIT * s + 1e-6).all()      # the bound is tight
        assert ((g.double() - e).abs() <= BF16_UNIT * s + 1e-6).all()


def test_gradcheck(gen):
    params, rest = _case(gen, N=5, d=3, K=4)
    params = [p.clone().requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(
        lambda h, w, b: head_nelbo_per_token(h, w, b, *rest, chunk_tokens=2), params)


def test_chunks_cover_every_token_once(gen, monkeypatch):
    seen = []
    real = head_loss._token_chunks

    def record(n, rows):
        for sl in real(n, rows):
            seen.append((sl.start, sl.stop))
            yield sl

    monkeypatch.setattr(head_loss, "_token_chunks", record)
    params, rest = _case(gen, N=23)
    params = [p.clone().requires_grad_(True) for p in params]
    head_nelbo_per_token(*params, *rest, chunk_tokens=5).sum().backward()
    expected = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]          # a short last chunk
    assert seen == expected * 2                                           # forward, backward


class _LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operator returns (allocations included)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("amp", [False, True])
def test_no_tensor_of_n_times_k_elements(gen, amp):
    """Forward and backward never make a tensor larger than a chunk of logits (or the weight):
    memory does not grow with N K. The logits path, seen the same way, does."""
    N, d, K, chunk = 2048, 8, 300, 16
    params, rest = _case(gen, N=N, d=d, K=K, dtype=torch.float32)
    params = [p.clone().requires_grad_(True) for p in params]
    bound = max(chunk * K, K * d, N * d)
    for fn, limit in ((lambda *a: head_nelbo_per_token(*a, chunk_tokens=chunk), bound),
                      (_logits_path, None)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp), _LargestTensor() as seen:
            loss = fn(*params, *rest)
        with _LargestTensor() as seen_backward:
            loss.sum().backward()
        largest = max(seen.largest, seen_backward.largest)
        assert largest <= limit if limit else largest >= N * K


def test_rejects_mismatched_shapes(gen):
    (h, weight, bias), rest = _case(gen)
    with pytest.raises(UserError, match="do not match"):
        head_nelbo_per_token(h[:, :-1], weight, bias, *rest)
    with pytest.raises(UserError, match="alpha_t"):
        head_nelbo_per_token(h, weight, bias, *rest[:2], rest[2][:-1], rest[3])


def _random_dit(gen, time_conditioning=True, dropout=0.0):
    cfg = dataclasses.replace(get_model_config("nano"), dropout=dropout,
                              time_conditioning=time_conditioning)
    torch.manual_seed(0)
    model = DiT(cfg, 53)
    with torch.no_grad():                      # the zero-initialised layers, made non-trivial
        for layer in (model.output, model.adaln_final, *(b.adaln for b in model.blocks)):
            layer.weight.normal_(0, 0.1, generator=gen)
            layer.bias.normal_(0, 0.1, generator=gen)
    zt = torch.randint(0, 53, (3, 11), generator=gen)
    return model, zt, torch.rand(3, generator=gen) * 3


@pytest.mark.parametrize("time_conditioning", [True, False])
def test_dit_features_then_output_layer_is_the_dit(gen, time_conditioning):
    model, zt, sigma = _random_dit(gen, time_conditioning)
    model.eval()
    features = dit_features(model, zt, sigma)
    assert features.shape == (3, 11, model.cfg.hidden)
    logits = features @ model.output.weight.T + model.output.bias
    torch.testing.assert_close(logits, model(zt, sigma), rtol=1e-5, atol=1e-5)


def test_dit_features_draw_the_same_dropout(gen):
    model, zt, sigma = _random_dit(gen, dropout=0.1)
    model.train()
    torch.manual_seed(7)
    expected = model(zt, sigma)
    torch.manual_seed(7)
    torch.testing.assert_close(model.output(dit_features(model, zt, sigma)), expected)


def test_a_dit_step_has_the_gradients_of_the_logits_path(gen):
    """Every parameter's gradient through dit_features + the fused head equals the one through
    the DiT's logits and loss_fused."""
    model, zt, sigma = _random_dit(gen)
    x0 = torch.randint(0, 53, zt.shape, generator=gen)
    alpha = torch.exp(-sigma).double()
    dalpha = torch.full_like(alpha, -0.999)
    fused = fused_nelbo_per_token(model(zt, sigma), x0, zt, alpha, dalpha).sum()
    ref = torch.autograd.grad(fused, list(model.parameters()))
    h = dit_features(model, zt, sigma).reshape(-1, model.cfg.hidden)
    per_token = [v[:, None].expand(zt.shape).reshape(-1) for v in (alpha, dalpha)]
    head = head_nelbo_per_token(h, model.output.weight, model.output.bias, x0.reshape(-1),
                                zt.reshape(-1), *per_token, chunk_tokens=4).sum()
    grads = torch.autograd.grad(head, list(model.parameters()))
    torch.testing.assert_close(head, fused, rtol=1e-6, atol=1e-6)
    for (name, _), g, r in zip(model.named_parameters(), grads, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=name)
