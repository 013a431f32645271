import pytest
import torch

from attractor.errors import UserError
from attractor.loss import nelbo_per_token
from attractor.model import DiT, ModelConfig, count_parameters, dit, get_model_config


def tiny_model(K=13, **kw):
    cfg = ModelConfig(hidden=32, blocks=2, heads=4, cond_dim=16, dropout=0.0, **kw)
    return DiT(cfg, K)


def test_prediction_is_uniform_at_initialisation(gen):
    K = 13
    model = tiny_model(K)
    zt = torch.randint(0, K, (3, 9), generator=gen)
    probs = torch.softmax(model(zt, torch.rand(3, generator=gen) * 5), -1)
    torch.testing.assert_close(probs, torch.full_like(probs, 1 / K))


def test_gradients_reach_every_parameter(gen):
    K = 13
    model = tiny_model(K)
    # Zero-initialised layers (adaLN, output head) block gradients at step 0 by design; give them
    # small random values so that the test checks the wiring of every parameter into the loss.
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(0, 0.02, generator=gen)
    x0 = torch.randint(0, K, (4, 8), generator=gen)
    zt = torch.randint(0, K, (4, 8), generator=gen)
    alpha = torch.rand(4, generator=gen) * 0.9 + 0.05
    logits = model(zt, -alpha.log())
    loss = nelbo_per_token(torch.log_softmax(logits, -1), x0, zt, alpha,
                           torch.full((4,), -0.999)).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name,expected", [("tiny", 33.8e6), ("small", 169.6e6),
                                           ("medium", 424.5e6)])
def test_parameter_counts_match_the_paper_configs(name, expected):
    cfg = get_model_config(name)
    analytic = count_parameters(cfg, 50258)
    assert abs(analytic - expected) / expected < 0.02
    with torch.device("meta"):
        model = DiT(cfg, 50258)
    assert sum(p.numel() for p in model.parameters()) == analytic


def test_bf16_autocast_runs_and_loss_matches_fp32(gen):
    K = 50
    model = tiny_model(K)
    with torch.no_grad():       # leave the uniform start so that the comparison is non-trivial
        model.output.weight.normal_(0, 0.5, generator=gen)
        for block in model.blocks:
            block.adaln.bias.normal_(0, 0.5, generator=gen)
    x0 = torch.randint(0, K, (8, 16), generator=gen)
    zt = torch.randint(0, K, (8, 16), generator=gen)
    alpha = torch.rand(8, generator=gen) * 0.9 + 0.05
    da = torch.full((8,), -0.999)

    def loss_fn():
        logits = model(zt, -alpha.log())
        return nelbo_per_token(torch.log_softmax(logits.float(), -1), x0, zt, alpha, da).mean()

    ref = loss_fn()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss_fn()
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert abs(low.item() - ref.item()) / ref.item() < 0.05


def test_dropout_is_active_in_train_mode_only(gen):
    K = 11
    model = DiT(ModelConfig(hidden=32, blocks=1, heads=2, cond_dim=8, dropout=0.5), K)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1, generator=gen)
    zt, s = torch.randint(0, K, (2, 6), generator=gen), torch.ones(2)
    model.eval()
    assert torch.equal(model(zt, s), model(zt, s))
    model.train()
    assert not torch.equal(model(zt, s), model(zt, s))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_keeps_each_entry_with_probability_one_minus_p(p, dtype):
    """Inverted dropout: entries are 0 or x / (1 - p); the dropped share is Binomial(n, p')
    with p' = round(p 2^16) / 2^16, the gradient is the same mask and scale, a seed repeats it."""
    x = torch.rand(64, 129, 33, generator=torch.Generator().manual_seed(1)).add_(0.5).to(dtype)
    x.requires_grad_(True)
    torch.manual_seed(3)
    y = dit.dropout(x, p, True)
    keep = y != 0
    scale = 1 / (1 - round(p * 2**16) / 2**16)
    torch.testing.assert_close(y[keep], x[keep] * torch.tensor(scale, dtype=dtype))
    n = x.numel()
    dropped = n - int(keep.sum())
    assert abs(dropped - n * p) <= 5 * (n * p * (1 - p)) ** 0.5
    per_lane = (~keep).reshape(-1, 4).float().mean(0)     # the four 16-bit lanes of one word
    assert float((per_lane - p).abs().max()) <= 5 * (4 * p * (1 - p) / n) ** 0.5
    (grad,) = torch.autograd.grad(y.float().sum(), x)
    assert torch.equal(grad, torch.where(keep, torch.tensor(scale, dtype=dtype), 0).to(dtype))
    torch.manual_seed(3)
    assert torch.equal(dit.dropout(x, p, True), y)
    assert dit.dropout(x, p, False) is x and dit.dropout(x, 0.0, True) is x
    odd = x.detach()[:, :7, :1].transpose(0, 1)          # 448 entries, not contiguous
    out = dit.dropout(odd, p, True)
    kept = odd * torch.tensor(scale, dtype=dtype)
    assert out.shape == odd.shape and bool(((out == 0) | (out == kept)).all())
    assert dit.dropout(x.detach()[:0], p, True).numel() == 0
    assert bool((dit.dropout(x.detach(), 1.0, True) == 0).all())      # p = 1: F.dropout


def test_unknown_or_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="not one of nano"):
        get_model_config("huge")
    with pytest.raises(UserError, match="heads"):
        ModelConfig(heads=3)


def test_adaln_keeps_float32_bits_and_fuses_bf16(gen):
    """LN(x) w (1 + scale) + shift: in float32 exactly the unfused products (float32 runs are
    unchanged); with bf16 shift and scale (autocast) the one-pass form, equal to rounding."""
    from attractor.model.dit import LayerNormNoBias

    norm = LayerNormNoBias(16)
    with torch.no_grad():
        norm.weight.normal_(generator=gen)
    x = torch.randn(3, 5, 16, generator=gen)
    shift, scale = torch.randn(3, 1, 16, generator=gen), torch.randn(3, 1, 16, generator=gen)
    assert torch.equal(norm.modulated(x, shift, scale), norm(x) * (1 + scale) + shift)
    low = norm.modulated(x, shift.bfloat16(), scale.bfloat16())
    ref = norm(x) * (1 + scale.bfloat16()) + shift.bfloat16()          # the unfused products
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=1e-5, atol=1e-5)


def test_gradients_are_bit_identical_on_two_threads(gen):
    """Training reproduces from its config on a multi-threaded CPU: repeated backward passes
    give the same gradients, the embedding's included (its rows gather many positions; indexing
    the table accumulated them in an order that varied between calls on two threads)."""
    model = tiny_model(K=300)
    with torch.no_grad():
        for p in model.parameters():
            if (p == 0).all():
                p.normal_(0, 0.02, generator=gen)
    zt = torch.randint(0, 300, (64, 32), generator=gen)
    sigma = torch.rand(64, generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(4):
            model.zero_grad()
            model(zt, sigma).logsumexp(-1).sum().backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    finally:
        torch.set_num_threads(before)
    for other in grads[1:]:
        assert all(torch.equal(grads[0][n], other[n]) for n in other)
