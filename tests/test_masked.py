"""Absorbing-state (masked) diffusion against its closed forms and brute force."""

import math

import pytest
import torch

from attractor import masked
from attractor.schedule import LogLinear

K, MASK = 6, 6          # ids 0..5 and the mask 6: logits have K + 1 = 7 entries
SCHEDULE = LogLinear()


def _kl_step(x: int, x_theta: torch.Tensor, t: float, s: float) -> float:
    """KL(q(z_s | z_t = m, x) || p_theta(z_s | z_t = m)) over the K + 1 states, float64."""
    a_t, a_s = (float(SCHEDULE.alpha(torch.tensor(v, dtype=torch.float64))) for v in (t, s))
    q = torch.zeros(K + 1, dtype=torch.float64)
    q[MASK] = (1 - a_s) / (1 - a_t)
    q[x] = (a_s - a_t) / (1 - a_t)
    p = torch.cat([(a_s - a_t) / (1 - a_t) * x_theta, torch.tensor([(1 - a_s) / (1 - a_t)],
                                                                    dtype=torch.float64)])
    keep = q > 0
    return float((q[keep] * (q[keep] / p[keep]).log()).sum())


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_nelbo_is_the_limit_of_T_times_the_step_kl(t, gen):
    logits = torch.randn(1, 3, K + 1, generator=gen, dtype=torch.float64)
    x0 = torch.tensor([[1, 4, 2]])
    zt = torch.tensor([[MASK, 4, MASK]])                 # position 1 unmasked: no loss
    tt = torch.tensor([t], dtype=torch.float64)
    loss = masked.nelbo_per_token(logits, x0, zt, SCHEDULE.alpha(tt), SCHEDULE.dalpha(tt), MASK)
    T = 1_000_000
    for pos in range(3):
        if zt[0, pos] != MASK:
            assert loss[0, pos] == 0
            continue
        x_theta = logits[0, pos, :K].softmax(-1)          # the mask gets no mass (SUBS)
        limit = T * _kl_step(int(x0[0, pos]), x_theta, t, t - 1 / T)
        assert float(loss[0, pos]) == pytest.approx(limit, rel=1e-4)


def test_a_correct_prediction_has_zero_loss():
    x0 = torch.tensor([[3, 0, 5]])
    logits = torch.full((1, 3, K + 1), -30.0)
    logits[0, torch.arange(3), x0[0]] = 30.0
    zt = torch.full_like(x0, MASK)
    t = torch.tensor([0.4])
    loss = masked.nelbo_per_token(logits, x0, zt, SCHEDULE.alpha(t), SCHEDULE.dalpha(t), MASK)
    assert float(loss.abs().max()) < 1e-20


def test_forward_masking_rate_and_exact_counts(gen):
    x0 = torch.randint(0, K, (400, 50), generator=gen)
    allowed = torch.rand(400, 50, generator=gen) < 0.8
    alpha = torch.full((400,), 0.7, dtype=torch.float64)
    zt = masked.mask_forward(x0, alpha, MASK, gen, allowed)
    assert bool((zt[~allowed] == x0[~allowed]).all())
    rate = float((zt[allowed] == MASK).double().mean())
    assert rate == pytest.approx(0.3, abs=4 * math.sqrt(0.21 / int(allowed.sum())))
    n = torch.randint(0, 10, (400,), generator=gen)
    exact = masked.mask_exactly(x0, n, MASK, gen, allowed)
    assert torch.equal((exact == MASK).sum(-1), torch.minimum(n, allowed.sum(-1)))
    assert bool((exact[~allowed] == x0[~allowed]).all())


@pytest.mark.parametrize("keyed", [False, True])
def test_one_ancestral_step_unmasks_at_the_posterior_rate_from_x_theta(gen, keyed):
    """From a generator, and from the probes' per-row streams (attractor.streams)."""
    from attractor.streams import RowStreams, item_key

    probs = torch.tensor([0.5, 0.25, 0.125, 0.125, 0.0, 0.0], dtype=torch.float64)
    logits = torch.cat([probs.log(), torch.tensor([5.0], dtype=torch.float64)]).float()

    def denoiser(zt, sigma):          # the mask logit is large: SUBS must ignore it
        return logits.expand(*zt.shape, K + 1)

    B, L = (500, 200) if keyed else (4000, 25)
    zt = torch.full((B, L), MASK)
    t, s = torch.full((B,), 0.8, dtype=torch.float64), torch.full((B,), 0.7, dtype=torch.float64)
    source = RowStreams([item_key(3, b) for b in range(B)]) if keyed else gen
    z = masked.unmask_step(denoiser, zt, t, s, SCHEDULE, MASK, source)
    a_t, a_s = float(SCHEDULE.alpha(t[0])), float(SCHEDULE.alpha(s[0]))
    expected = (a_s - a_t) / (1 - a_t)
    rate = float((z != MASK).double().mean())
    assert rate == pytest.approx(expected, abs=4 * math.sqrt(expected * (1 - expected) / z.numel()))
    drawn = z[z != MASK]
    freq = torch.bincount(drawn, minlength=K + 1)[:K].double() / len(drawn)
    torch.testing.assert_close(freq, probs, atol=0.02, rtol=0)
    done = masked.ancestral(denoiser, zt, t, SCHEDULE, steps=3, mask_id=MASK, generator=gen)
    assert not bool((done == MASK).any())             # the last step reaches alpha = 1


def test_confidence_unmasking_goes_most_certain_first():
    # position 2 is the most certain, then 0, then 1 (its max probability is the lowest)
    logits = torch.full((1, 3, K + 1), 0.0)
    logits[0, 0, 3], logits[0, 1, 1], logits[0, 2, 4] = 4.0, 2.0, 8.0
    seen = []

    def denoiser(zt, sigma):
        seen.append(zt.clone())
        return logits.clone()

    z = masked.confidence(denoiser, torch.full((1, 3), MASK), torch.tensor([1.0]), SCHEDULE,
                          steps=3, mask_id=MASK)
    assert z.tolist() == [[3, 1, 4]]
    assert seen[1].tolist() == [[MASK, MASK, 4]] and seen[2].tolist() == [[3, MASK, 4]]


def test_leave_one_out_masks_one_real_position_at_a_time():
    def denoiser(zt, sigma):          # x_theta at a masked position: uniform over ids 0..5
        out = torch.full((*zt.shape, K + 1), -5.0)
        out[..., :K] = 0.0
        return out

    x = torch.tensor([[1, 2, 3, 0]])
    real = torch.tensor([[True, True, True, False]])
    h, log_p = masked.leave_one_out(denoiser, x, real, MASK, 0.25, SCHEDULE, max_rows=2)
    assert torch.allclose(h[0, :3], torch.full((3,), math.log(K), dtype=torch.float64))
    assert torch.allclose(log_p[0, :3], torch.full((3,), -math.log(K), dtype=torch.float64))
    assert h[0, 3] == 0 and log_p[0, 3] == 0



def test_nelbo_per_token_is_the_masked_rows_loss_and_zero_elsewhere(gen):
    """Computed on the masked rows only: equal to -w log x_theta[x0] over every row, then kept
    where z_t is masked; and so are the gradients."""
    logits = torch.randn(3, 5, K + 1, generator=gen, dtype=torch.float64, requires_grad=True)
    x0 = torch.randint(0, K, (3, 5), generator=gen)
    zt = torch.where(torch.rand(3, 5, generator=gen) < 0.5, torch.full_like(x0, MASK), x0)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    alpha, dalpha = SCHEDULE.alpha(t), SCHEDULE.dalpha(t)
    loss = masked.nelbo_per_token(logits, x0, zt, alpha, dalpha, MASK)
    log_p = logits[..., :K].log_softmax(-1).gather(-1, x0[..., None])[..., 0]
    ref = torch.where(zt == MASK, (dalpha / (1 - alpha))[:, None] * log_p, 0.0)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)       # float32 loss
    w = torch.rand(3, 5, generator=gen, dtype=torch.float64)
    (got,) = torch.autograd.grad((loss * w).sum(), logits)
    (want,) = torch.autograd.grad((ref * w).sum(), logits)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_leave_one_out_asks_a_denoiser_that_takes_rows_for_one_row_each(gen):
    logits = torch.randn(2, 5, K + 1, generator=gen)

    def whole(zt, sigma):
        return logits[: len(zt)] + (zt == MASK)[..., None]           # depends on the masking

    def rows_only(zt, sigma, rows):
        assert bool((rows.sum(-1) == 1).all())                       # one position per row
        return whole(zt, sigma)[rows]

    rows_only.takes_rows = True
    x = torch.randint(0, K, (2, 5), generator=gen)
    real = torch.tensor([[True] * 5, [True, True, False, False, False]])
    a = masked.leave_one_out(whole, x, real, MASK, 0.2, SCHEDULE, max_rows=2)
    b = masked.leave_one_out(rows_only, x, real, MASK, 0.2, SCHEDULE, max_rows=2)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
