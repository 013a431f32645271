import pytest
import torch

from attractor.loss import nelbo_per_token, stratified_times
from attractor.posterior import posterior

EPS = 1e-3


def alpha(t):
    return 1 - (1 - EPS) * t


def discrete_limit(x0, log_probs, t, T):
    """E_{z_t ~ q(z_t|x)} [ T * KL(q(z_s|z_t,x) || p_theta(z_s|z_t)) ], s = t - 1/T (brute force)."""
    K = log_probs.shape[-1]
    a_t = torch.tensor([alpha(t)], dtype=torch.float64)
    a_s = torch.tensor([alpha(t - 1 / T)], dtype=torch.float64)
    x = torch.nn.functional.one_hot(torch.tensor([[x0]]), K).double()
    q_zt = alpha(t) * x[0, 0] + (1 - alpha(t)) / K
    total = 0.0
    for z in range(K):
        zt = torch.tensor([[z]])
        q = posterior(x, zt, a_t, a_s)
        p = posterior(log_probs.exp(), zt, a_t, a_s)
        total += q_zt[z] * T * (q * (q.log() - p.log())).sum()
    return float(total)


def continuous(x0, log_probs, t):
    K = log_probs.shape[-1]
    x = torch.nn.functional.one_hot(torch.tensor([[x0]]), K).double()
    q_zt = alpha(t) * x[0, 0] + (1 - alpha(t)) / K
    per_z = [nelbo_per_token(log_probs, torch.tensor([[x0]]), torch.tensor([[z]]),
                             torch.tensor([alpha(t)], dtype=torch.float64),
                             torch.tensor([-(1 - EPS)], dtype=torch.float64))[0, 0]
             for z in range(K)]
    return float((q_zt * torch.stack(per_z)).sum())


@pytest.mark.parametrize("K,t", [(5, 0.4), (3, 0.05), (7, 0.9)])
def test_loss_is_the_continuous_time_limit_of_the_kl(gen, K, t):
    log_probs = torch.log_softmax(torch.randn(1, 1, K, generator=gen, dtype=torch.float64), -1)
    x0 = int(torch.randint(0, K, (1,), generator=gen))
    exact = continuous(x0, log_probs, t)
    # The discrete KL converges at O(1/T); Richardson extrapolation removes the leading term.
    k1, k2 = discrete_limit(x0, log_probs, t, 2e4), discrete_limit(x0, log_probs, t, 4e4)
    assert exact == pytest.approx(2 * k2 - k1, rel=1e-6)
    assert exact > 0


def test_loss_zero_at_perfect_prediction_positive_otherwise(gen):
    K = 6
    x0 = torch.randint(0, K, (4, 10), generator=gen)
    zt = torch.randint(0, K, (4, 10), generator=gen)
    a = torch.full((4,), 0.37, dtype=torch.float64)
    da = torch.full((4,), -(1 - EPS), dtype=torch.float64)
    perfect = torch.nn.functional.one_hot(x0, K).double().clamp_min(1e-300).log()
    assert nelbo_per_token(perfect, x0, zt, a, da).abs().max() < 1e-9
    other = torch.log_softmax(torch.randn(4, 10, K, generator=gen, dtype=torch.float64), -1)
    assert (nelbo_per_token(other, x0, zt, a, da) > 0).all()


def test_loss_is_float32_under_bf16_autocast(gen):
    K = 11
    logits = torch.randn(2, 5, K, generator=gen)
    x0 = torch.randint(0, K, (2, 5), generator=gen)
    zt = torch.randint(0, K, (2, 5), generator=gen)
    a, da = torch.tensor([0.9, 0.01]), torch.full((2,), -0.999)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nelbo_per_token(torch.log_softmax(logits, -1), x0, zt, a, da)
    assert loss.dtype == torch.float32
    ref = nelbo_per_token(torch.log_softmax(logits.double(), -1), x0, zt, a.double(), da.double())
    torch.testing.assert_close(loss.double(), ref, rtol=2e-4, atol=1e-5)


def test_stratified_times_cover_each_stratum_once(gen):
    n = 64
    t = stratified_times(n, gen, eps=EPS)
    u = (t - EPS) / (1 - EPS)
    strata = torch.sort((u * n).floor().long()).values
    assert torch.equal(strata, torch.arange(n))
    assert t.min() >= EPS and t.max() <= 1
