"""The output layer fused with the loss (head_loss) against the logits path: values, gradients
(float64, float32, bf16), chunking, memory, and the trainer's three families through it."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from attractor import head_loss as hl
from attractor.errors import UserError
from attractor.head_loss import crossentropy_rows, head_loss, resolve_head
from attractor.loss_fused import fused_nelbo_per_token, nelbo_rows
from attractor.model import DiT, ModelConfig, get_model_config
from attractor.schedule import LogLinear
from attractor.train.objectives import Objective, build_model

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
    """The (N, K) logits, then loss_fused (one token per 'sequence', so alpha can differ per
    token)."""
    logits = F.linear(h, weight, bias)
    return fused_nelbo_per_token(logits[:, None], x0[:, None], zt[:, None], alpha, dalpha)[:, 0]


def _fused(chunk=None, store=True):
    return lambda h, w, b, *rest: head_loss(h, w, b, nelbo_rows(*rest), store, chunk)


def _value_and_grads(fn, params, rest, weights, amp=False):
    params = [p.clone().requires_grad_(True) for p in params]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss = fn(*params, *rest)
    grads = torch.autograd.grad((loss * weights).sum(), params)
    return loss.detach(), grads


@pytest.mark.parametrize("slices", [None, 3])                # the kernel on slices of 3 rows
@pytest.mark.parametrize("store", [True, False])
@pytest.mark.parametrize("chunk", [37, 1, 4, 10, 100])       # whole, divides N or not, > N
def test_float64_matches_the_logits_path(gen, chunk, store, slices, monkeypatch):
    params, rest = _case(gen)
    if slices:
        monkeypatch.setattr(hl, "KERNEL_CHUNK_ELEMENTS", slices * params[1].shape[0])
    w = torch.rand(rest[0].shape, generator=gen, dtype=torch.float64)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w)
    out, grads = _value_and_grads(_fused(chunk, store), params, rest, w)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == torch.float64
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("store", [True, False])
def test_float32_matches_the_logits_path(gen, store):
    params, rest = _case(gen, N=50, d=16, K=301, dtype=torch.float32)
    w = torch.rand(rest[0].shape, generator=gen)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w)
    out, grads = _value_and_grads(_fused(7, store), params, rest, w)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


def _exact_grads(params, rest, weights):
    """dL/dlogits at the bf16 logits of the logits path, in float64, then its three products in
    float64, with the bounds that a bf16 rounding of each factor and of each result allows:
    |D| |W|, |D|^T |h| and sum |D|."""
    h, weight, bias = params
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.linear(h, weight, bias).detach().double().requires_grad_(True)
    loss = fused_nelbo_per_token(logits[:, None], *(v[:, None] for v in rest[:2]), *rest[2:])
    (D,) = torch.autograd.grad((loss[:, 0] * weights.double()).sum(), logits)
    hb, wb = h.bfloat16().double(), weight.bfloat16().double()
    exact = (D @ wb, D.T @ hb, D.sum(0))
    scale = (D.abs() @ wb.abs(), D.T.abs() @ hb.abs(), D.abs().sum(0))
    return exact, scale


@pytest.mark.parametrize("store", [True, False])
@pytest.mark.parametrize("constant", [True, False])       # the trainer's mean, or any weights
def test_bf16_autocast_matches_to_bf16_rounding(gen, store, constant):
    """Under autocast the logits are bf16 (as nn.Linear's): the loss matches the logits path;
    each gradient is within bf16 rounding of the exact products of the exact dL/dlogits at those
    logits, as the logits path's own gradients are: D and the product's result are rounded once
    each. With per-token weights g, the factor (g / max g) * h of dW and db is rounded too."""
    params, rest = _case(gen, N=300, d=32, K=501, dtype=torch.float32)
    w = torch.full(rest[0].shape, 1 / 300) if constant else torch.rand(rest[0].shape, generator=gen)
    ref, ref_grads = _value_and_grads(_logits_path, params, rest, w, amp=True)
    out, grads = _value_and_grads(_fused(7, store), params, rest, w, amp=True)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=2 * BF16_UNIT, atol=1e-4)
    exact, scale = _exact_grads(params, rest, w)
    for g, r, e, s in zip(grads, ref_grads, exact, scale, strict=True):
        assert g.dtype == torch.float32
        roundings = 2 if constant else 3                  # D, the result (and g * h)
        assert ((r.double() - e).abs() <= 2 * BF16_UNIT * s + 1e-6).all()
        assert ((g.double() - e).abs() <= roundings * BF16_UNIT * s + 1e-6).all()


@pytest.mark.parametrize("store", [True, False])
def test_gradcheck(gen, store):
    params, rest = _case(gen, N=5, d=3, K=4)
    params = [p.clone().requires_grad_(True) for p in params]
    assert torch.autograd.gradcheck(lambda h, w, b: _fused(2, store)(h, w, b, *rest), params)
    target, weight = rest[0] % 3, torch.rand(5, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda h, w, b: head_loss(h, w, b, crossentropy_rows(target, weight, excluded=3), store, 2),
        params)


@pytest.mark.parametrize("excluded", [None, 28])
def test_crossentropy_rows_is_weighted_cross_entropy(gen, excluded):
    """The masked (mask logit excluded) and autoregressive loss: w_n (-log softmax(x_n)[y_n])."""
    (h, weight, bias), _ = _case(gen)
    target = torch.randint(0, 28, (37,), generator=gen)
    w = torch.rand(37, generator=gen, dtype=torch.float64)
    params = [p.clone().requires_grad_(True) for p in (h, weight, bias)]
    logits = F.linear(*params)
    if excluded is not None:
        logits = logits.index_fill(-1, torch.tensor([excluded]), float("-inf"))
    ref = F.cross_entropy(logits, target, reduction="none") * w
    ref_grads = torch.autograd.grad(ref.sum(), params)
    params = [p.detach().clone().requires_grad_(True) for p in params]
    out = head_loss(*params, crossentropy_rows(target, w, excluded), chunk_tokens=5)
    grads = torch.autograd.grad(out.sum(), params)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


def test_chunks_cover_every_token_once(gen, monkeypatch):
    seen = []
    real = hl._token_chunks

    def record(n, rows):
        if rows == 5:                                          # the head's chunks, not the kernel's
            for sl in real(n, rows):
                seen.append((sl.start, sl.stop))
                yield sl
        else:
            yield from real(n, rows)

    monkeypatch.setattr(hl, "_token_chunks", record)
    params, rest = _case(gen, N=23)
    expected = [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]          # a short last chunk
    for store, passes in ((True, 1), (False, 2)):                        # recompute: backward too
        seen.clear()
        p = [v.clone().requires_grad_(True) for v in params]
        _fused(5, store)(*p, *rest).sum().backward()
        assert seen == expected * passes


class _Allocations(TorchDispatchMode):
    """Records the element count of every tensor an operator returns (allocations included),
    views left out (a view of a tensor is not another allocation)."""

    def __init__(self):
        super().__init__()
        self.sizes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and not func.is_view:
                self.sizes.append(t.numel())
        return out


@pytest.mark.parametrize("amp", [False, True])
def test_memory_of_each_head(gen, amp):
    """recompute never makes a tensor larger than a chunk of logits (or the weight); fused keeps
    one (N, K) tensor, D; the logits path makes the logits and their gradient."""
    N, d, K, chunk = 2048, 8, 300, 16
    params, rest = _case(gen, N=N, d=d, K=K, dtype=torch.float32)
    params = [p.clone().requires_grad_(True) for p in params]
    small = max(chunk * K, K * d + K, N * d + N)
    for fn, most in ((_fused(chunk, False), 0), (_fused(chunk, True), 1), (_logits_path, None)):
        hl._WORKSPACE.tensor = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp), _Allocations() as seen:
            loss = fn(*params, *rest)
            loss.sum().backward()
        large = [n for n in seen.sizes if n > small]
        assert len(large) >= 2 if most is None else len(large) == most
        assert all(n == N * K for n in large)


def test_no_gradient_no_d(gen):
    """Under no_grad (evaluation) the fused head forms the loss only: nothing (N, K)."""
    N, K = 512, 300
    params, rest = _case(gen, N=N, K=K, dtype=torch.float32)
    params = [p.clone().requires_grad_(True) for p in params]
    with torch.no_grad(), _Allocations() as seen:
        loss = _fused(16, True)(*params, *rest)
    assert max(seen.sizes) < N * K
    torch.testing.assert_close(loss, _logits_path(*params, *rest).detach(), rtol=1e-5, atol=1e-5)


def test_d_is_reused_across_steps_and_never_shared(gen):
    """The stored D lives in one CPU workspace from step to step; a second forward pass before
    the first's backward gets its own tensor, and both backward passes stay right."""
    params, rest = _case(gen, N=40, K=31, dtype=torch.float32)
    params = [p.clone().requires_grad_(True) for p in params]
    w1 = torch.rand(40, generator=gen)
    hl._WORKSPACE.tensor = None
    (_fused(8)(*params, *rest) * w1).sum().backward()
    first = hl._WORKSPACE.tensor.data_ptr()
    expected = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    a = (_fused(8)(*params, *rest) * w1).sum()
    b = (_fused(8)(*params, *rest) * 2 * w1).sum()       # while a's D is lent
    assert hl._WORKSPACE.tensor.data_ptr() == first
    b.backward()
    a.backward()
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.grad, 3 * e)
    assert hl._WORKSPACE.holder is None
    fewer = [p.detach()[:25].clone().requires_grad_(True) if i == 0 else p
             for i, p in enumerate(params)]                    # fewer rows (masked): a slice
    head_loss(*fewer, nelbo_rows(*(v[:25] for v in rest)), True, 8).sum().backward()
    assert hl._WORKSPACE.tensor.data_ptr() == first
    hl.release_workspace()
    assert hl._WORKSPACE.tensor is None


def test_the_memory_check_counts_what_each_head_keeps(monkeypatch):
    """A step refused with the logits or D counted passes where the head keeps neither (the
    masked family's D may cover no position, so it is not counted)."""
    from attractor import budget
    from attractor.train.config import TrainConfig

    def cfg(family, head):
        return TrainConfig(family=family, head=head, model_name="tiny", batch_size=64,
                           precision="fp32", device="cpu")

    K = 50_257
    low = budget.training_step_bytes(cfg("uniform", "recompute"), K, head="recompute")
    monkeypatch.setattr(budget, "device_memory", lambda device: low + 2**20)   # + K + 1 ids
    for family, head, refused in (("uniform", "recompute", False), ("uniform", "fused", True),
                                  ("uniform", "logits", True), ("masked", "fused", False),
                                  ("masked", "logits", True)):
        if refused:
            with pytest.raises(UserError, match="needs about"):
                budget.check_training(cfg(family, head), K, torch.device("cpu"))
        else:
            budget.check_training(cfg(family, head), K, torch.device("cpu"))


def test_rejects_mismatched_shapes_and_unknown_heads(gen):
    (h, weight, bias), rest = _case(gen)
    with pytest.raises(UserError, match="do not match"):
        head_loss(h[:, :-1], weight, bias, nelbo_rows(*rest))
    with pytest.raises(UserError, match="bias must have shape"):
        head_loss(h, weight, bias[:-1], nelbo_rows(*rest))
    with pytest.raises(UserError, match="head is 'fast'"):
        resolve_head("fast", 100, False)
    assert resolve_head("auto", 1023, False) == "logits"
    assert resolve_head("auto", 1024, False) == "fused"
    assert resolve_head("auto", 50258, True) == "logits"
    assert resolve_head("recompute", 10, False) == "recompute"
    with pytest.raises(UserError, match="runs eagerly"):
        resolve_head("fused", 50258, True)


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
def test_a_dit_head_sees_the_output_layers_input(gen, time_conditioning):
    model, zt, sigma = _random_dit(gen, time_conditioning)
    model.eval()
    logits = model(zt, sigma, head=lambda h, w, b: h @ w.T + b)
    torch.testing.assert_close(logits, model(zt, sigma), rtol=1e-5, atol=1e-5)
    assert model(zt, sigma, head=lambda h, w, b: h).shape == (3, 11, model.cfg.hidden)


def test_a_dit_head_draws_the_same_dropout(gen):
    model, zt, sigma = _random_dit(gen, dropout=0.1)
    model.train()
    torch.manual_seed(7)
    expected = model(zt, sigma)
    torch.manual_seed(7)
    torch.testing.assert_close(model(zt, sigma, head=F.linear), expected)


CFG = ModelConfig(hidden=16, blocks=2, heads=2, cond_dim=8, dropout=0.0, time_features=16)


def _family_step(family, gen):
    K = 23
    model = build_model(CFG, family, K)
    for p in model.parameters():                          # away from the zero initialisation
        torch.nn.init.normal_(p, std=0.3, generator=gen)
    x0 = torch.randint(0, K, (4, 9), generator=gen)
    t = torch.rand(4, generator=gen) * 0.9 + 0.05
    base = Objective(family, LogLinear(), K)
    zt = base.corrupt(x0, t, gen)
    m = torch.rand(4, 9, generator=gen)                      # any per-token weights (pads: 0)

    def step(head, amp=None):
        model.zero_grad()
        loss = dataclasses.replace(base, head=head, amp=amp).loss(model, x0, zt, t)
        (loss * m).sum().backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    return step


@pytest.mark.parametrize("family", ["uniform", "masked", "ar"])
def test_every_family_has_the_same_loss_and_gradients_through_each_head(gen, family):
    """The trainer's objective in float32: the loss and every parameter's gradient through the
    fused heads equal those through the logits."""
    step = _family_step(family, gen)
    ref_loss, ref = step("logits")
    for head in ("fused", "recompute"):
        loss, grads = step(head)
        assert loss.shape == (4, 9) and loss.dtype == torch.float32
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-6)
        for name, g in grads.items():
            torch.testing.assert_close(g, ref[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("family", ["uniform", "masked", "ar"])
def test_every_head_under_bf16_is_as_close_to_float32_as_the_logits_path(gen, family):
    """Under bf16 autocast every head's gradients are within a few bf16 roundings of the float32
    ones (relative norm; the logits path's own error here is up to 1.4%)."""
    step = _family_step(family, gen)
    _, exact = step("logits")
    for head in ("logits", "fused", "recompute"):
        loss, grads = step(head, torch.bfloat16)
        assert loss.dtype == torch.float32
        for name, g in grads.items():
            error = float((g - exact[name]).norm() / exact[name].norm())
            assert error < 8 * BF16_UNIT, (head, name, error)


def test_a_masked_batch_without_a_mask_has_zero_loss_and_zero_gradients(gen):
    K = 23
    model = build_model(CFG, "masked", K)
    x0 = torch.randint(0, K, (2, 5), generator=gen)
    objective = Objective("masked", LogLinear(), K, head="fused")
    loss = objective.loss(model, x0, x0, torch.full((2,), 0.5))
    loss.sum().backward()
    assert bool((loss == 0).all())
    assert model.output.weight.grad is not None and bool((model.output.weight.grad == 0).all())
