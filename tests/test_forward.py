import pytest
import torch

from attractor.forward import corrupt_exactly, prior_sample, q_xt


@pytest.mark.parametrize("alpha,K", [(0.75, 7), (0.3, 50), (0.05, 2)])
def test_corruption_rate_matches_eq1(gen, alpha, K):
    x0 = torch.randint(0, K, (400, 256), generator=gen)
    zt = q_xt(x0, torch.full((400,), alpha), K, gen)
    rate = (zt != x0).double().mean().item()
    expected = (1 - alpha) * (1 - 1 / K)
    stderr = (expected * (1 - expected) / x0.numel()) ** 0.5
    assert abs(rate - expected) < 5 * stderr


def test_resampled_tokens_are_uniform(gen):
    K = 6
    x0 = torch.zeros(2000, 100, dtype=torch.long)
    zt = q_xt(x0, torch.zeros(2000), K, gen)   # alpha = 0: pure noise
    counts = torch.bincount(zt.flatten(), minlength=K).double() / zt.numel()
    torch.testing.assert_close(counts, torch.full((K,), 1 / K, dtype=torch.float64), atol=4e-3,
                               rtol=0)


def test_per_sequence_alpha(gen):
    x0 = torch.zeros(2, 20000, dtype=torch.long)
    zt = q_xt(x0, torch.tensor([1.0, 0.0]), 10, gen)
    assert (zt[0] == 0).all()
    assert abs((zt[1] != 0).double().mean().item() - 0.9) < 0.02


def test_corrupt_exactly_changes_exactly_n(gen):
    K = 5
    x0 = torch.randint(0, K, (64, 30), generator=gen)
    n = torch.randint(0, 31, (64,), generator=gen)
    zt = corrupt_exactly(x0, n, K, gen)
    assert torch.equal((zt != x0).sum(1), n)
    assert zt.min() >= 0 and zt.max() < K


def test_corrupt_exactly_respects_allowed_positions(gen):
    x0 = torch.randint(0, 9, (32, 16), generator=gen)
    allowed = torch.zeros(32, 16, dtype=torch.bool)
    allowed[:, :6] = True
    zt = corrupt_exactly(x0, 4, 9, gen, allowed=allowed)
    assert torch.equal(zt[:, 6:], x0[:, 6:])
    assert ((zt != x0).sum(1) == 4).all()


def test_same_seed_same_noise():
    x0 = torch.randint(0, 11, (8, 8), generator=torch.Generator().manual_seed(0))
    a = q_xt(x0, torch.full((8,), 0.5), 11, torch.Generator().manual_seed(3))
    b = q_xt(x0, torch.full((8,), 0.5), 11, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    p = prior_sample((4, 5), 11, torch.Generator().manual_seed(3))
    assert p.shape == (4, 5) and p.dtype == torch.int64
