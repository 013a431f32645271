"""Samplers against closed-form Gaussian scores; the learned score model; the data sets."""

import math

import pytest
import torch

from attractor.errors import UserError
from attractor.memories.dense import classify as cls
from attractor.memories.dense import data
from attractor.memories.dense import energy as am
from attractor.memories.dense.samplers import noise_grid, sample
from attractor.memories.dense.score_model import ScoreModel, ScoreModelConfig

pytestmark = pytest.mark.usefixtures("one_thread")   # small matrices: threads only cost


def _gaussian_score(s2):
    # Data N(0, s2 I) noised to sigma is N(0, (s2 + sigma^2) I): score -x / (s2 + sigma^2).
    return lambda x, sigma: -x / (s2 + sigma**2)


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_samplers_recover_the_variance_of_gaussian_data(method):
    s2 = 0.25
    sigmas = noise_grid(5.0, 0.01, 400)
    x = sample(_gaussian_score(s2), 4000, 2, sigmas, torch.Generator().manual_seed(0), method)
    # The final Tweedie step returns E[x0 | x] at sigma_min, whose variance is s2^2/(s2+smin^2).
    assert x.var(0).mean().item() == pytest.approx(s2, rel=0.08)
    assert x.mean(0).abs().max().item() < 0.05


def test_samplers_are_deterministic_under_a_seeded_generator():
    sigmas = noise_grid(1.0, 0.01, 20)
    a = sample(_gaussian_score(1.0), 10, 3, sigmas, torch.Generator().manual_seed(5), "sde")
    b = sample(_gaussian_score(1.0), 10, 3, sigmas, torch.Generator().manual_seed(5), "sde")
    assert a.shape == (10, 3) and a.dtype == torch.float64
    assert torch.equal(a, b)


def test_unknown_sampler_is_a_user_error():
    with pytest.raises(UserError):
        sample(_gaussian_score(1.0), 2, 2, noise_grid(1.0, 0.1, 2), torch.Generator(), "heun")


def test_exact_empirical_score_memorises_every_sample():
    # With the exact score down to a small sigma every sample collapses onto a training point.
    patterns = data.circle_points(6, torch.Generator().manual_seed(3))
    def score(x, s):
        return am.score(x, patterns, s)
    x = sample(score, 300, 2, noise_grid(1.0, 0.005, 300), torch.Generator().manual_seed(1))
    labels = cls.classify(x, patterns, cls.Thresholds())
    assert cls.fractions(labels)["memorised"] == 1.0


def _dsm(score, x0, sigma, eps):
    """Denoising score matching loss at one noise level for any score function."""
    xt = x0 + sigma * eps
    return ((sigma * score(xt, sigma) + eps) ** 2).sum(-1).mean().item()


def test_score_matching_closes_most_of_the_gap_to_the_exact_score():
    patterns = data.circle_points(4, torch.Generator().manual_seed(0))
    cfg = ScoreModelConfig(hidden=32, layers=2, iterations=1500)
    model = ScoreModel(cfg).fit(patterns, torch.Generator().manual_seed(0))
    untrained = ScoreModel(ScoreModelConfig(hidden=32, layers=2, iterations=1, lr=1e-12))
    untrained.fit(patterns, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(9)
    x0 = patterns[torch.randint(4, (4000,), generator=g)]
    eps = torch.randn(4000, 2, generator=g, dtype=torch.float64)
    def exact(x, s):
        return am.score(x, patterns, s)
    for sigma in (0.3, 1.0):  # small sigma needs far longer training
        best = _dsm(exact, x0, sigma, eps)
        trained, start = _dsm(model.score, x0, sigma, eps), _dsm(untrained.score, x0, sigma, eps)
        assert best <= trained + 0.02
        assert trained - best < 0.5 * (start - best)
    x = torch.randn(5, 2, dtype=torch.float64)
    assert torch.allclose(model.denoise(x, 0.3), x + 0.09 * model.score(x, 0.3))
    hess = model.energy_hessian(x, 0.3)
    assert hess.shape == (5, 2, 2) and torch.allclose(hess, hess.transpose(-1, -2))


def test_learned_hessian_matches_finite_differences_of_the_learned_score():
    patterns = data.circle_points(3, torch.Generator().manual_seed(0))
    model = ScoreModel(ScoreModelConfig(hidden=16, layers=1, iterations=5)).fit(
        patterns, torch.Generator().manual_seed(0))
    x, sigma, h = torch.tensor([[0.3, -0.2]], dtype=torch.float64), 0.4, 1e-3
    cols = [(model.score(x + h * e, sigma) - model.score(x - h * e, sigma)) / (2 * h)
            for e in torch.eye(2, dtype=torch.float64)]
    jac = torch.stack(cols, -1)[0]
    expected = -(sigma**2) * 0.5 * (jac + jac.T)
    assert torch.allclose(model.energy_hessian(x, sigma)[0], expected, atol=1e-3)


def test_config_rejects_bad_noise_range():
    with pytest.raises(UserError):
        ScoreModelConfig(sigma_min=1.0, sigma_max=0.5)


def test_circle_points_lie_on_the_circle_and_are_nested_across_k():
    a = data.circle_points(5, torch.Generator().manual_seed(4))
    b = data.circle_points(9, torch.Generator().manual_seed(4))
    assert torch.allclose(a.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert torch.equal(a, b[:5])


def test_nearest_neighbour_distances_against_brute_force():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(12, 3, generator=g, dtype=torch.float64)
    brute = [sorted(float((pts[i] - pts[j]).norm()) for j in range(12) if j != i)[1]
             for i in range(12)]
    assert data.nearest_neighbour_distances(pts, k=2).tolist() == pytest.approx(brute)


def test_digits_are_64_dimensional_in_minus_one_one_and_split_disjointly():
    train, held = data.split_digits(50, torch.Generator().manual_seed(0), held_out=20)
    assert train.shape == (50, 64) and held.shape == (20, 64)
    assert train.min() >= -1 and train.max() <= 1
    small, held_small = data.split_digits(30, torch.Generator().manual_seed(0), held_out=20)
    assert torch.equal(small, train[:30]) and torch.equal(held_small, held)
    with pytest.raises(UserError):
        data.split_digits(2000, torch.Generator())
    assert math.isfinite(data.median_spacing(train))
