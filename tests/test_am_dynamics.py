"""Zero-temperature retrieval (eq. 6) and Glauber sampling on hand-made couplings."""

import itertools

import numpy as np
import pytest

from attractor.errors import UserError
from attractor.memories.binary import asynchronous, glauber, run_dynamics, synchronous


def test_antiferromagnetic_pair_cycles_synchronously_and_settles_asynchronously():
    j = np.array([[0.0, -1.0], [-1.0, 0.0]], dtype=np.float32)
    start = np.array([[1.0, 1.0]], dtype=np.float32)
    sync = synchronous(j, start, max_steps=10)
    assert sync.period.tolist() == [2]
    assert sync.steps.tolist() == [2]  # (1,1) -> (-1,-1) -> (1,1): back after two steps
    done = asynchronous(j, start, np.random.default_rng(0), max_sweeps=10)
    assert done.period.tolist() == [1]
    assert done.states[0, 0] == -done.states[0, 1]  # the two fixed points are anti-aligned


def test_rotation_couplings_give_a_four_cycle():
    # Asymmetric J: (a, b) -> (b, -a) -> (-a, -b) -> (-b, a) -> (a, b).
    j = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    result = synchronous(j, np.array([[1.0, 1.0], [1.0, -1.0]], dtype=np.float32), max_steps=10)
    assert result.period.tolist() == [4, 4]


def test_fixed_points_unresolved_runs_and_ties():
    j = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    start = np.array([[1.0, 1.0, -1.0]], dtype=np.float32)
    result = synchronous(j, start)
    # Site 3 has zero field: a tie keeps the current value.
    assert result.period.tolist() == [1] and np.array_equal(result.states, start)
    rotation = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    short = synchronous(rotation, np.ones((1, 2), dtype=np.float32), max_steps=2)
    assert short.period.tolist() == [0]


def test_batch_rows_are_independent_runs():
    rng = np.random.default_rng(0)
    j = rng.standard_normal((12, 12)).astype(np.float32)
    np.fill_diagonal(j, 0.0)
    states = np.sign(rng.standard_normal((6, 12))).astype(np.float32)
    batch = synchronous(j, states, 20)
    for row in range(6):
        single = synchronous(j, states[row : row + 1], 20)
        assert np.array_equal(single.states[0], batch.states[row])
        assert single.period[0] == batch.period[row]


def test_symmetric_couplings_never_cycle_asynchronously():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20, 20))
    j = ((a + a.T) / 2).astype(np.float32)
    np.fill_diagonal(j, 0.0)
    states = np.sign(rng.standard_normal((30, 20))).astype(np.float32)
    result = asynchronous(j, states, rng, max_sweeps=200)
    assert np.all(result.period == 1)
    fields = result.states @ j.T
    assert np.all(result.states * fields >= 0)  # every site agrees with its field


def test_glauber_samples_the_boltzmann_law_of_symmetric_couplings():
    # Brute force over the 8 states of N = 3: p(s) ~ exp(beta s^T J s / 2).
    j = np.array([[0, 0.8, -0.4], [0.8, 0, 0.3], [-0.4, 0.3, 0]], dtype=np.float32)
    beta = 1.0
    states = np.array(list(itertools.product([-1, 1], repeat=3)), dtype=np.float64)
    weights = np.exp(beta * 0.5 * np.einsum("si,ij,sj->s", states, j, states))
    exact = weights / weights.sum()
    rng = np.random.default_rng(2)
    samples = glauber(j, np.ones((20000, 3), dtype=np.float32), beta, 30, rng)
    codes = ((samples > 0) * np.array([4, 2, 1])).sum(axis=1)
    empirical = np.bincount(codes, minlength=8) / samples.shape[0]
    assert 0.5 * np.abs(empirical - exact).sum() < 0.02


def test_bad_rule_is_a_user_error():
    with pytest.raises(UserError):
        run_dynamics(
            np.zeros((2, 2), np.float32),
            np.ones((1, 2), np.float32),
            "parallel",
            np.random.default_rng(0),
        )
