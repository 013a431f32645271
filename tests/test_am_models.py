"""Coupling rules of the binary memory: closed forms, finite differences, capacity ordering."""

import numpy as np
import pytest

from attractor.config import ConfigError
from attractor.errors import UserError
from attractor.memories.binary import (
    HebbianMemory,
    PLConfig,
    PseudoInverseMemory,
    PseudoLikelihoodMemory,
    basin_curve,
    pseudo_likelihood_gradient,
    pseudo_likelihood_loss,
    random_states,
    synchronous,
)
from attractor.memories.binary.pseudolikelihood import log_2cosh


def test_loss_is_minus_log_conditional_over_beta():
    rng = np.random.default_rng(0)
    xi = random_states(5, 7, rng).astype(np.float64)
    j = rng.standard_normal((7, 7))
    np.fill_diagonal(j, 0.0)
    beta = 0.7
    # Direct eq. (9): p(xi_i | xi_-i) = exp(beta xi_i h_i) / (2 cosh(beta h_i)), looped by hand.
    total = 0.0
    for mu in range(5):
        for i in range(7):
            h = sum(j[i, k] * xi[mu, k] for k in range(7))
            total -= np.log(np.exp(beta * xi[mu, i] * h) / (2 * np.cosh(beta * h))) / beta
    assert pseudo_likelihood_loss(j, xi, beta) == pytest.approx(total / 35, rel=1e-10)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    xi = random_states(6, 5, rng).astype(np.float64)
    j = rng.standard_normal((5, 5))
    np.fill_diagonal(j, 0.0)
    beta, eps = 1.3, 1e-6
    grad = pseudo_likelihood_gradient(j, xi, beta)
    numeric = np.zeros_like(j)
    for a in range(5):
        for b in range(5):
            if a == b:
                continue
            step = np.zeros_like(j)
            step[a, b] = eps
            numeric[a, b] = (
                pseudo_likelihood_loss(j + step, xi, beta)
                - pseudo_likelihood_loss(j - step, xi, beta)
            ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-8)
    assert np.all(np.diag(grad) == 0)


def test_log_2cosh_is_stable_and_exact():
    x = np.array([-1000.0, -3.0, 0.0, 0.5, 1000.0])
    expected = np.array(
        [1000.0, np.log(2 * np.cosh(3.0)), np.log(2.0), np.log(2 * np.cosh(0.5)), 1000.0]
    )
    np.testing.assert_allclose(log_2cosh(x), expected, rtol=1e-12)


def test_hebbian_and_pseudo_inverse_closed_forms():
    rng = np.random.default_rng(2)
    xi = random_states(6, 30, rng)
    hebb = HebbianMemory().fit(xi).couplings_
    expected = sum(np.outer(p, p) for p in xi.astype(np.float64)) / 30
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(hebb, expected, atol=1e-6)
    pinv = PseudoInverseMemory().fit(xi).couplings_
    # With the diagonal restored the projector maps every pattern onto itself.
    projector = pinv.astype(np.float64) + np.diag(np.diag(xi.T @ np.linalg.pinv(xi.T)))
    np.testing.assert_allclose(xi @ projector.T, xi, atol=1e-4)
    assert np.allclose(pinv, pinv.T, atol=1e-6) and np.all(np.diag(pinv) == 0)


def test_training_lowers_the_loss_and_keeps_a_zero_diagonal():
    rng = np.random.default_rng(3)
    xi = random_states(30, 60, rng)
    memory = PseudoLikelihoodMemory(n_epochs=50).fit(xi)
    assert memory.couplings_.shape == (60, 60)
    assert np.all(np.diag(memory.couplings_) == 0)
    first = memory.loss_curve_[0][1]
    assert memory.loss_ < first
    hebb = HebbianMemory().fit(xi).couplings_
    assert pseudo_likelihood_loss(hebb, xi, 0.1) == pytest.approx(first, rel=1e-5)


def test_pseudo_likelihood_stores_beyond_the_hebbian_capacity():
    # alpha = 0.3 is twice the Hebbian alpha_c ~ 0.138: Hebb loses the patterns, PL keeps a basin.
    rng = np.random.default_rng(4)
    xi = random_states(45, 150, rng)
    pl = PseudoLikelihoodMemory(n_epochs=200).fit(xi).couplings_
    hebb = HebbianMemory().fit(xi).couplings_
    assert np.array_equal(synchronous(pl, xi, 5).states, xi)
    assert not np.array_equal(synchronous(hebb, xi, 5).states, xi)
    grid = np.array([0.0, 0.05, 0.1, 0.15])
    assert basin_curve(pl, xi, rng, 40, grid).radius >= 0.1
    assert basin_curve(hebb, xi, rng, 40, grid).radius == 0.0


@pytest.mark.parametrize("bad", [{"beta": 0}, {"learning_rate": -1}, {"n_epochs": -1},
                                 {"clip_norm": 0}, {"init": "random"}])
def test_bad_hyperparameters_are_one_line_errors_naming_the_field(bad):
    with pytest.raises(ConfigError) as err:
        PseudoLikelihoodMemory(**bad)
    assert err.value.path == next(iter(bad)) and "\n" not in str(err.value)
    assert isinstance(err.value, UserError)


def test_keywords_and_config_build_the_same_memory():
    xi = random_states(10, 30, np.random.default_rng(5))
    by_keywords = PseudoLikelihoodMemory(beta=0.2, n_epochs=20)
    by_config = PseudoLikelihoodMemory(PLConfig(beta=0.2, n_epochs=20))
    assert by_keywords.config == by_config.config == PLConfig(beta=0.2, n_epochs=20)
    assert PseudoLikelihoodMemory(PLConfig(beta=0.2), n_epochs=20).config == by_config.config
    np.testing.assert_array_equal(by_keywords.fit(xi).couplings_, by_config.fit(xi).couplings_)


@pytest.mark.parametrize("model", [HebbianMemory, PseudoInverseMemory, PseudoLikelihoodMemory])
@pytest.mark.parametrize(
    "patterns", [np.array([[1, 0, 1, -1]]), np.array([[1], [-1]]), np.array([[0.5, 1.0]])]
)
def test_every_model_rejects_non_binary_or_tiny_patterns(model, patterns):
    with pytest.raises(UserError):
        model().fit(patterns)
