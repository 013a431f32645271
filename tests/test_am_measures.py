"""Basins, margins, Gardner's bound, coupling statistics and conditional entropy."""

import math

import numpy as np
import pytest

from attractor.memories.binary import (
    HebbianMemory,
    basin_curve,
    conditional_entropy,
    coupling_stats,
    flip_bits,
    gardner_kappa_max,
    margins,
    overlap,
    random_states,
)
from attractor.memories.binary.measures import (
    flip_grid,
    gardner_inverse_capacity,
    radius_from_success,
)


def test_flip_bits_flips_exactly_k_distinct_bits_per_row():
    rng = np.random.default_rng(0)
    states = random_states(50, 40, rng)
    flipped = flip_bits(states, 7, rng)
    assert np.all((flipped != states).sum(axis=1) == 7)
    np.testing.assert_allclose(overlap(flipped, states), 1 - 2 * 7 / 40)


def test_single_pattern_basin_reaches_just_below_one_half():
    # One Hebbian pattern: h_i = xi_i (m N - xi_i s_i) / N, so any start with m0 > 1/N is pulled
    # back in one step, while m0 = 0 (f = 0.5) is not. The radius is the last grid point below 0.5.
    rng = np.random.default_rng(1)
    xi = random_states(1, 40, rng)
    j = HebbianMemory().fit(xi).couplings_
    curve = basin_curve(j, xi, rng, n_trials=30)
    assert curve.radius == pytest.approx(0.475)
    assert curve.stable and curve.success[-1] < 0.9
    # From m0 = 0 every field opposes its site (h_i = -s_i / N): s -> -s -> s, a 2-cycle.
    assert curve.cycles == pytest.approx(1 / curve.fractions.size)


def test_radius_needs_every_smaller_fraction_to_succeed():
    fractions = flip_grid(0.1)
    assert fractions.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert radius_from_success(fractions, np.array([1, 1, 0.5, 1, 1, 1.0])) == 0.1
    assert radius_from_success(fractions, np.array([0.2, 1, 1, 1, 1, 1.0])) == 0.0
    assert radius_from_success(fractions, np.ones(6)) == 0.5


def test_margins_match_a_loop():
    rng = np.random.default_rng(2)
    xi = random_states(4, 6, rng)
    j = rng.standard_normal((6, 6))
    np.fill_diagonal(j, 0.0)
    kappa = margins(j, xi)
    for mu in range(4):
        for i in range(6):
            h = sum(j[i, k] * xi[mu, k] for k in range(6))
            assert kappa[mu, i] == pytest.approx(xi[mu, i] * h / math.sqrt(sum(j[i] ** 2)))
    assert np.allclose(margins(3.0 * j, xi), kappa)  # scale invariant, like eq. (6)


def test_gardner_bound_against_numerical_integration():
    t = np.linspace(-12, 12, 400001)
    density = np.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    for kappa in (-1.0, 0.0, 0.7, 2.5):
        integrand = np.where(t > -kappa, density * (t + kappa) ** 2, 0.0)
        numeric = np.sum(integrand) * (t[1] - t[0])
        assert gardner_inverse_capacity(kappa) == pytest.approx(numeric, rel=1e-5)
    assert gardner_kappa_max(2.0) == pytest.approx(0.0, abs=1e-8)  # alpha_c(0) = 2
    for alpha in (0.05, 0.5, 3.0):
        assert alpha * gardner_inverse_capacity(gardner_kappa_max(alpha)) == pytest.approx(1.0)
    assert gardner_kappa_max(0.1) > gardner_kappa_max(0.2) > 0 > gardner_kappa_max(2.5)


def test_coupling_stats_closed_forms():
    a = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert coupling_stats(a) == pytest.approx({"norm": math.sqrt(2), "asymmetry": 0.0})
    b = np.array([[0.0, 1.0], [-1.0, 0.0]])
    assert coupling_stats(b)["asymmetry"] == pytest.approx(1.0)


def test_conditional_entropy_matches_brute_force_conditionals():
    rng = np.random.default_rng(3)
    n, beta = 5, 0.8
    j = rng.standard_normal((n, n))
    np.fill_diagonal(j, 0.0)
    states = random_states(3, n, rng)
    entropy = conditional_entropy(j, states, beta)
    for b in range(3):
        for i in range(n):
            up, down = states[b].copy(), states[b].copy()
            up[i], down[i] = 1, -1
            # p(s_i | s_-i) from the two values of beta s_i h_i, with h_i free of s_i (J_ii = 0).
            w_up, w_down = (
                np.exp(beta * up[i] * (j[i] @ up)),
                np.exp(beta * down[i] * (j[i] @ down)),
            )
            p = w_up / (w_up + w_down)
            assert entropy[b, i] == pytest.approx(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))
    assert np.all(conditional_entropy(np.zeros((n, n)), states, beta) == pytest.approx(1.0))
    assert np.all(conditional_entropy(1e6 * j, states, beta) < 1e-6)
