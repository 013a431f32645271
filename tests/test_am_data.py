"""Pattern validation and the data models: random features, unseen mixtures, digits."""

import numpy as np
import pytest

from attractor.errors import UserError
from attractor.memories.binary import (
    as_states,
    dense_feature_data,
    load_binary_digits,
    sparse_feature_data,
)
from attractor.memories.binary.data import count_sparse_mixtures, split_digits


def test_as_states_accepts_pm_one_and_rejects_everything_else():
    assert as_states(np.array([1, -1, 1])).shape == (1, 3)
    assert as_states(np.array([[True, False]]) * 2 - 1).dtype == np.float32
    for bad in ([[0, 1, 1]], [[1.0, np.nan]], [[1]], np.zeros((0, 4)), [["a", "b"]]):
        with pytest.raises(UserError) as err:
            as_states(np.array(bad))
        assert "\n" not in str(err.value)


def test_sparse_mixtures_have_l_features_and_unseen_tests():
    rng = np.random.default_rng(0)
    d, size = 8, 3
    # 2^3 C(8,3) = 448 mixtures: a load where collisions would be frequent if not excluded.
    data = sparse_feature_data(60, 150, 100, d, size, rng)
    assert count_sparse_mixtures(d, size) == 448
    assert np.all((data.train_coefficients != 0).sum(axis=1) == size)
    assert np.all((data.test_coefficients != 0).sum(axis=1) == size)
    np.testing.assert_array_equal(data.train, np.sign(data.train_coefficients @ data.features))
    seen = {row.tobytes() for row in data.train_coefficients}
    assert len(seen) == 150  # distinct training mixtures
    for row in data.test_coefficients:
        assert row.tobytes() not in seen and (-row).tobytes() not in seen
    train_patterns = {row.tobytes() for row in np.concatenate([data.train, -data.train])}
    assert not any(row.tobytes() in train_patterns for row in data.test)


def test_too_many_mixtures_is_a_user_error():
    with pytest.raises(UserError, match="distinct mixtures"):
        sparse_feature_data(50, 20, 10, 4, 3, np.random.default_rng(0))  # only 32 exist
    with pytest.raises(UserError, match="odd"):
        sparse_feature_data(50, 5, 5, 10, 2, np.random.default_rng(0))


def test_dense_features_mix_all_features():
    rng = np.random.default_rng(1)
    data = dense_feature_data(80, 30, 20, 5, rng)
    assert data.train.shape == (30, 80) and data.test.shape == (20, 80)
    np.testing.assert_array_equal(data.test, np.sign(data.test_coefficients @ data.features))


def test_digits_are_binary_and_split_without_overlap():
    images = load_binary_digits()
    assert images.shape == (1797, 64) and set(np.unique(images)) == {-1.0, 1.0}
    data = split_digits(200, 100, np.random.default_rng(2))
    train = {row.tobytes() for row in data.train}
    assert not any(row.tobytes() in train for row in data.test)
    with pytest.raises(UserError):
        split_digits(1700, 300, np.random.default_rng(2))
