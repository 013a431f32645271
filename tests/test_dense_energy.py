"""The exact DenseAM: gradient, Hessian and denoiser against independent computations."""

import math

import pytest
import torch

from attractor.memories.dense import energy as am

pytestmark = pytest.mark.usefixtures("one_thread")   # small matrices: threads only cost


def _setup(k=5, d=3, b=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(k, d, generator=g, dtype=torch.float64)
    x = torch.randn(b, d, generator=g, dtype=torch.float64)
    return patterns, x


def _log_p_brute(x, patterns, sigma):
    """log of K^-1 sum_mu N(x; xi_mu, sigma^2 I), built from the (B, K, d) differences."""
    d = x.shape[-1]
    sq = ((x[:, None, :] - patterns[None]) ** 2).sum(-1)
    norm = -0.5 * d * math.log(2 * math.pi * sigma**2) - math.log(patterns.shape[0])
    return torch.logsumexp(-sq / (2 * sigma**2), -1) + norm


@pytest.mark.parametrize("sigma", [0.3, 1.0])
def test_score_identity_denoiser_equals_tweedie(sigma):
    patterns, x = _setup()
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(_log_p_brute(x, patterns, sigma).sum(), x)
    x = x.detach()
    assert torch.allclose(am.score(x, patterns, sigma), grad, atol=1e-10)
    # D(x) = x + sigma^2 grad log p_sigma(x), and grad E = -sigma^2 grad log p_sigma.
    assert torch.allclose(am.denoise(x, patterns, sigma), x + sigma**2 * grad, atol=1e-10)
    assert torch.allclose(am.energy_grad(x, patterns, sigma), -(sigma**2) * grad, atol=1e-10)


def test_energy_is_minus_sigma2_log_density_up_to_a_constant():
    patterns, x = _setup()
    sigma = 0.5
    diff = am.energy(x, patterns, sigma) + sigma**2 * _log_p_brute(x, patterns, sigma)
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-10)


def test_gradient_matches_finite_differences_of_energy():
    patterns, x = _setup()
    sigma, h = 0.7, 1e-6
    fd = torch.stack([
        (am.energy(x + h * e, patterns, sigma) - am.energy(x - h * e, patterns, sigma)) / (2 * h)
        for e in torch.eye(3, dtype=torch.float64)], -1)
    assert torch.allclose(am.energy_grad(x, patterns, sigma), fd, atol=1e-7)


@pytest.mark.parametrize("sigma", [0.4, 1.5])
def test_hessian_matches_finite_differences_of_gradient(sigma):
    patterns, x = _setup()
    h = 1e-5
    cols = [(am.energy_grad(x + h * e, patterns, sigma) - am.energy_grad(x - h * e, patterns, sigma))
            / (2 * h) for e in torch.eye(3, dtype=torch.float64)]
    fd = torch.stack(cols, -1)  # (B, d, d): column j = d grad / d x_j
    hess = am.hessian(x, patterns, sigma)
    assert torch.allclose(hess, fd, atol=1e-6)
    assert torch.allclose(hess, hess.transpose(-1, -2))


def test_hessian_with_log_weights_matches_autograd():
    patterns, x = _setup(k=4, d=2, b=3)
    logw = torch.log_softmax(torch.tensor([0.3, -1.0, 2.0, 0.0], dtype=torch.float64), 0)
    for row in x:
        auto = torch.autograd.functional.hessian(
            lambda v: am.energy(v[None], patterns, 0.6, logw)[0], row)
        assert torch.allclose(am.hessian(row[None], patterns, 0.6, logw)[0], auto, atol=1e-9)


def test_fixed_point_iteration_never_raises_the_energy():
    patterns, x = _setup(k=20, d=2, b=50)
    sigma = 0.5
    e_prev = am.energy(x, patterns, sigma)
    for _ in range(30):
        x = am.denoise(x, patterns, sigma)
        e = am.energy(x, patterns, sigma)
        assert bool((e <= e_prev + 1e-12).all())
        e_prev = e


@pytest.mark.parametrize("half_gap,merged", [(0.8, True), (1.2, False)])
def test_two_patterns_pitchfork_at_distance_two_sigma(half_gap, merged):
    # Patterns at +-a on a line: the midpoint is a minimum iff a < sigma, where Hess = 1 - a^2/s^2.
    sigma = 1.0
    patterns = torch.tensor([[-half_gap, 0.0], [half_gap, 0.0]], dtype=torch.float64)
    mid = torch.zeros(1, 2, dtype=torch.float64)
    assert am.hessian(mid, patterns, sigma)[0, 0, 0].item() == pytest.approx(
        1 - half_gap**2 / sigma**2)
    starts = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    found = am.find_minima(patterns, sigma, starts)
    assert found.points.shape[0] == (1 if merged else 2)
    assert bool((found.eigenvalues > 0).all())
    if merged:
        assert found.points.norm().item() < 1e-6


def test_well_separated_patterns_are_the_only_minima_with_unit_curvature():
    patterns = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    starts = 3 * torch.randn(300, 2, generator=torch.Generator().manual_seed(2),
                             dtype=torch.float64) + 2
    found = am.find_minima(patterns, 0.5, starts)
    assert found.points.shape[0] == 3
    dist = torch.cdist(found.points, patterns).min(1).values
    assert bool((dist < 1e-8).all())
    assert torch.allclose(found.eigenvalues, torch.ones_like(found.eigenvalues), atol=1e-8)
    assert int(found.counts.sum()) == 300


def test_deduplicate_groups_points_within_the_radius():
    pts = torch.tensor([[0.0, 0.0], [0.001, 0.0], [1.0, 1.0], [1.0, 1.0005]], dtype=torch.float64)
    reps, labels = am.deduplicate(pts, 0.01)
    assert reps.shape[0] == 2
    assert labels.tolist() == [0, 0, 1, 1]
    assert torch.allclose(reps[0], torch.tensor([0.0005, 0.0], dtype=torch.float64))
