import pytest
import torch

from attractor.posterior import posterior


def brute_force(x, zt, a_t, a_s):
    """Bayes: q(z_s | x) Q(z_t | z_s), normalised over z_s (x may be a distribution)."""
    K = x.shape[-1]
    a_ts = a_t / a_s
    Q = a_ts * torch.eye(K, dtype=torch.float64) + (1 - a_ts) / K   # Q[z_s, z_t]
    prior = a_s * x + (1 - a_s) / K
    joint = prior * Q[:, zt]
    return joint / joint.sum()


def test_rows_sum_to_one_and_match_bayes(gen):
    K = 4
    for _ in range(20):
        t, s = sorted(torch.rand(2, generator=gen, dtype=torch.float64).tolist(), reverse=True)
        a_t, a_s = 1 - 0.999 * t, 1 - 0.999 * s
        for one_hot in (True, False):
            if one_hot:
                x = torch.nn.functional.one_hot(torch.randint(0, K, (3,), generator=gen), K)
            else:
                x = torch.softmax(torch.randn(3, K, generator=gen, dtype=torch.float64), -1)
            x = x.double()[None]                                # (1, 3, K)
            zt = torch.randint(0, K, (1, 3), generator=gen)
            p = posterior(x, zt, torch.tensor([a_t]), torch.tensor([a_s]))
            assert p.dtype == torch.float64
            torch.testing.assert_close(p.sum(-1), torch.ones(1, 3, dtype=torch.float64))
            for pos in range(3):
                torch.testing.assert_close(p[0, pos], brute_force(x[0, pos], zt[0, pos].item(),
                                                                  a_t, a_s))


def test_last_step_to_clean(gen):
    K = 5
    x = torch.softmax(torch.randn(1, 2, K, generator=gen, dtype=torch.float64), -1)
    zt = torch.tensor([[1, 3]])
    a_t = torch.tensor([0.2], dtype=torch.float64)
    p = posterior(x, zt, a_t, torch.tensor([1.0], dtype=torch.float64))
    onehot = torch.nn.functional.one_hot(zt, K).double()
    expected = x * (K * 0.2 * onehot + 0.8)
    torch.testing.assert_close(p, expected / expected.sum(-1, keepdim=True))
    for pos in range(2):
        torch.testing.assert_close(p[0, pos], brute_force(x[0, pos], zt[0, pos].item(), 0.2, 1.0))


def test_mixture_form_is_the_same_distribution(gen):
    from attractor.posterior import posterior_mixture

    K = 6
    x = torch.softmax(torch.randn(3, 4, K, generator=gen, dtype=torch.float64), -1)
    zt = torch.randint(0, K, (3, 4), generator=gen)
    a_t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    for a_s in (torch.tensor([0.6, 0.7, 0.95], dtype=torch.float64), 1.0):
        w_x, w_u, w_stay = posterior_mixture(x.gather(-1, zt[..., None])[..., 0], a_t, a_s, K)
        mixture = w_x[..., None] * x + w_u[..., None] / K \
            + w_stay[..., None] * torch.nn.functional.one_hot(zt, K)
        torch.testing.assert_close(mixture, posterior(x, zt, a_t, a_s))


def test_posterior_step_samples_and_argmax_match_the_full_posterior(gen):
    from attractor.sampler import posterior_step

    K, n = 5, 40000
    logits = torch.randn(1, 1, K, generator=gen)
    log_x = torch.log_softmax(logits, -1).expand(1, n, K)
    zt = torch.full((1, n), 2)
    a_t, a_s = torch.tensor([0.3]), torch.tensor([0.5])
    exact = posterior(log_x[:, :1].double().exp(), zt[:, :1], a_t, a_s)[0, 0]
    draws = posterior_step(log_x, zt, a_t, a_s, gen)
    freq = torch.bincount(draws.flatten(), minlength=K).double() / n
    stderr = (exact * (1 - exact) / n).sqrt()
    assert bool(((freq - exact).abs() <= 5 * stderr + 1e-12).all()), (freq, exact)
    # greedy: the argmax of the full posterior, for many random (x, z_t, t, s)
    log_x = torch.log_softmax(3 * torch.randn(64, 8, K, generator=gen), -1)
    zt = torch.randint(0, K, (64, 8), generator=gen)
    a_t = torch.rand(64, generator=gen) * 0.5
    a_s = a_t + (1 - a_t) * torch.rand(64, generator=gen)
    full = posterior(log_x.double().exp(), zt, a_t.double(), a_s.double())
    assert torch.equal(posterior_step(log_x, zt, a_t, a_s, gen, greedy=True), full.argmax(-1))


@pytest.mark.parametrize("greedy", [False, True])
def test_posterior_step_reads_bf16_logits_as_their_float32_values(greedy, monkeypatch):
    """bf16 logits (probes under autocast) give exactly the step of the same values in float32,
    whatever the chunking."""
    from attractor import softmax_rows
    from attractor.sampler import posterior_step

    g = torch.Generator().manual_seed(3)
    logits = (4 * torch.randn(6, 9, 301, generator=g)).bfloat16()
    zt = torch.randint(0, 301, (6, 9), generator=g)
    a_t, a_s = torch.full((6,), 0.2), torch.full((6,), 0.6)
    ref = posterior_step(logits.float(), zt, a_t, a_s, torch.Generator().manual_seed(0), greedy)
    monkeypatch.setattr(softmax_rows, "CHUNK_BYTES", 7 * 301 * 4)          # 7 rows: short last
    out = posterior_step(logits, zt, a_t, a_s, torch.Generator().manual_seed(0), greedy)
    assert torch.equal(out, ref)


def test_keyed_streams_draw_from_the_same_posterior(gen):
    """The probes' per-row streams (attractor.streams) sample eq. (2) as a generator does."""
    from attractor.sampler import posterior_step
    from attractor.streams import RowStreams, item_key

    K, B, L = 5, 200, 200
    logits = torch.randn(1, 1, K, generator=gen)
    log_x = torch.log_softmax(logits, -1).expand(B, L, K)
    zt = torch.full((B, L), 2)
    a_t, a_s = torch.tensor([0.3]), torch.tensor([0.5])
    exact = posterior(log_x[:1, :1].double().exp(), zt[:1, :1], a_t, a_s)[0, 0]
    draws = posterior_step(log_x, zt, a_t, a_s, RowStreams([item_key(7, b) for b in range(B)]))
    freq = torch.bincount(draws.flatten(), minlength=K).double() / (B * L)
    stderr = (exact * (1 - exact) / (B * L)).sqrt()
    assert bool(((freq - exact).abs() <= 5 * stderr + 1e-12).all()), (freq, exact)
