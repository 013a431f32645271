"""Sample classification, basin sizes and the Appendix C entropy check on closed forms."""

import math

import pytest
import torch

from attractor.memories.dense import classify as cls
from attractor.memories.dense import energy as am
from attractor.memories.dense import entropy as ent

pytestmark = pytest.mark.usefixtures("one_thread")   # small matrices: threads only cost


PATTERNS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)


def test_classify_separates_copies_shared_novel_points_and_loners():
    # spacing s = 1: delta_m = delta_s = 1/3, min_shared = 3.
    copies = PATTERNS[:2] + 0.01
    cluster = torch.tensor([[0.5, 0.5]], dtype=torch.float64) + 0.01 * torch.arange(4.0)[:, None]
    loners = torch.tensor([[3.0, 3.0], [-3.0, 2.0]], dtype=torch.float64)
    labels = cls.classify(torch.cat([copies, cluster, loners]), PATTERNS, cls.Thresholds())
    assert labels.tolist() == [cls.MEMORISED] * 2 + [cls.SPURIOUS] * 4 + [cls.GENERALISED] * 2
    frac = cls.fractions(labels)
    assert frac == pytest.approx({"memorised": 0.25, "spurious": 0.5, "generalised": 0.25})


def test_thresholds_scale_with_the_training_spacing():
    th = cls.Thresholds(memorised=0.5, spurious=0.25)
    small, large = th.absolute(PATTERNS * 0.1), th.absolute(PATTERNS * 10)
    assert small["spacing"] == pytest.approx(0.1) and large["spacing"] == pytest.approx(10.0)
    assert large["delta_m"] == pytest.approx(5.0) and large["delta_s"] == pytest.approx(2.5)


def test_critical_noise_of_an_ideal_memory_and_of_a_memory_that_does_nothing():
    grid = torch.tensor([0.02, 0.05, 0.1, 0.2, 0.3, 0.6], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    # The exact denoiser at a small sigma, iterated, snaps to the nearest pattern (Voronoi basin
    # of half-width 0.5): recovery holds for noise well below 0.5, fails far above it.
    def snap(x, s):
        return am.fixed_point(x, PATTERNS, 0.05)[0]
    basins = cls.critical_noise(snap, PATTERNS, grid, radius=0.01, generator=g, trials=40)
    assert bool((basins >= 0.1).all()) and bool((basins <= 0.3).all())
    # Returning the noisy point unchanged recovers nothing beyond the radius.
    def identity(x, s):
        return x
    none = cls.critical_noise(identity, PATTERNS, grid, radius=0.01, generator=g, trials=40)
    assert torch.equal(none, torch.zeros(4, dtype=torch.float64))


def _brute_posterior_logpdf(x0, xt, patterns, width, sigma):
    """log p(x0) + log p(x_t | x0), unnormalised in x0 (Bayes, term by term)."""
    d = x0.shape[-1]
    prior = torch.logsumexp(-((x0[:, None] - patterns) ** 2).sum(-1) / (2 * width**2), -1)
    like = -((xt - x0) ** 2).sum(-1) / (2 * sigma**2)
    return prior + like - 0.5 * d * math.log(2 * math.pi)


def test_gaussian_mixture_posterior_is_bayes_rule():
    g = torch.Generator().manual_seed(1)
    patterns = torch.randn(5, 2, generator=g, dtype=torch.float64)
    xt = torch.tensor([0.3, -0.4], dtype=torch.float64)
    post = ent.posterior(xt, patterns, width=0.3, sigma=0.5)
    x0 = torch.randn(50, 2, generator=g, dtype=torch.float64)
    diff = ent.log_density(x0, post) - _brute_posterior_logpdf(x0, xt, patterns, 0.3, 0.5)
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-10)
    # normalised: a Riemann sum over a wide grid integrates to one
    grid = torch.linspace(-5, 5, 401, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="ij")
    dens = ent.log_density(torch.stack([gx.flatten(), gy.flatten()], -1), post).exp()
    assert float(dens.sum() * (grid[1] - grid[0]) ** 2) == pytest.approx(1.0, abs=1e-6)


def test_laplace_is_exact_for_a_single_gaussian_and_monte_carlo_agrees():
    patterns = torch.zeros(1, 3, dtype=torch.float64)
    post = ent.posterior(torch.ones(3, dtype=torch.float64), patterns, width=0.4, sigma=0.3)
    closed = 1.5 * math.log(2 * math.pi * math.e * post.tau**2)
    lap, half_logdet = ent.laplace_entropy(post)
    assert lap == pytest.approx(closed, abs=1e-9)
    assert half_logdet == pytest.approx(3 * math.log(post.tau), abs=1e-9)
    mc = ent.exact_entropy(post, 20000, torch.Generator().manual_seed(0))
    assert mc == pytest.approx(closed, abs=0.03)


def test_laplace_underestimates_a_bimodal_posterior():
    # Two equal, far-apart components: the true entropy exceeds the one-mode Laplace by log 2.
    patterns = torch.tensor([[-5.0], [5.0]], dtype=torch.float64)
    post = ent.posterior(torch.zeros(1, dtype=torch.float64), patterns, width=0.2, sigma=1.0)
    mc = ent.exact_entropy(post, 20000, torch.Generator().manual_seed(0))
    lap, _ = ent.laplace_entropy(post)
    assert mc - lap == pytest.approx(math.log(2), abs=0.03)
    assert ent.effective_components(post) == pytest.approx(2.0)
