"""Pattern sets for the binary memory: random, random-features mixtures, binarised digits.

Random-features (RF) model: D hidden features f_k in {+-1}^N (D = alpha_D N) and patterns
xi = sign(sum_k c_k f_k).
* sparse: c has exactly L non-zero entries, each +-1 (an L-mixture of features; L odd, so no
  ties). Unseen test mixtures are coefficient vectors absent from the training set, and so are
  their negations: the dynamics of eq. (6) are odd, so -xi is a fixed point whenever xi is, and
  a test pattern equal to minus a training pattern would be "retrieved" trivially.
* dense: c = z ~ N(0, I_D) (Negri et al. 2023); test patterns use fresh z.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from attractor.errors import UserError, require
from attractor.memories.binary.patterns import STATE_DTYPE, random_states


@dataclass(frozen=True)
class FeatureData:
    """Train and unseen test patterns built from the same hidden features.

    train: (P, N), test: (P_test, N), features: (D, N) float32 +-1; train_coefficients and
    test_coefficients: (P, D) and (P_test, D) float32, the mixtures behind each pattern.
    """

    train: np.ndarray
    test: np.ndarray
    features: np.ndarray
    train_coefficients: np.ndarray
    test_coefficients: np.ndarray


def _sign_with_random_ties(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ties = random_states(x.shape[0], x.shape[1], rng)
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, ties)).astype(STATE_DTYPE)


def count_sparse_mixtures(n_features: int, mixture_size: int) -> int:
    """Number of distinct L-mixtures with +-1 coefficients: 2^L C(D, L)."""
    return 2**mixture_size * math.comb(n_features, mixture_size)


def _sparse_coefficients(count: int, n_features: int, size: int, rng: np.random.Generator):
    """(count, D) int8 rows with exactly ``size`` non-zero +-1 entries at random positions."""
    keys = rng.random((count, n_features))
    support = np.argpartition(keys, size - 1, axis=1)[:, :size]
    coefficients = np.zeros((count, n_features), dtype=np.int8)
    rows = np.repeat(np.arange(count), size)
    signs = 2 * rng.integers(0, 2, size=count * size) - 1
    coefficients[rows, support.ravel()] = signs
    return coefficients


def _distinct_mixtures(count, n_features, size, rng, exclude=frozenset()):
    """``count`` distinct coefficient rows whose bytes are not in ``exclude`` (rejection)."""
    chosen: list[np.ndarray] = []
    seen = set(exclude)
    while len(chosen) < count:
        for row in _sparse_coefficients(2 * (count - len(chosen)) + 16, n_features, size, rng):
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                chosen.append(row)
                if len(chosen) == count:
                    break
    return np.stack(chosen)


def sparse_feature_data(
    n: int,
    n_train: int,
    n_test: int,
    n_features: int,
    mixture_size: int,
    rng: np.random.Generator,
) -> FeatureData:
    """Sparse RF data: distinct training L-mixtures and unseen test L-mixtures (see module doc)."""
    require(n >= 2, f"N must be >= 2, got {n}")
    require(n_features >= 1, f"the number of features D must be >= 1, got {n_features}")
    require(
        1 <= mixture_size <= n_features and mixture_size % 2 == 1,
        f"the mixture size L must be odd and between 1 and D = {n_features}, got {mixture_size}",
    )
    total = count_sparse_mixtures(n_features, mixture_size)
    # Excluding the negations of training mixtures can remove up to 2 P of them.
    require(
        2 * n_train + n_test <= total,
        f"D = {n_features}, L = {mixture_size} allow only {total} distinct mixtures, too few for "
        f"{n_train} training and {n_test} unseen test patterns; raise N or lower alpha",
    )
    features = random_states(n_features, n, rng)
    train_c = _distinct_mixtures(n_train, n_features, mixture_size, rng)
    banned = {row.tobytes() for row in train_c} | {(-row).tobytes() for row in train_c}
    test_c = _distinct_mixtures(n_test, n_features, mixture_size, rng, frozenset(banned))
    return FeatureData(
        train=_sign_with_random_ties(train_c.astype(STATE_DTYPE) @ features, rng),
        test=_sign_with_random_ties(test_c.astype(STATE_DTYPE) @ features, rng),
        features=features,
        train_coefficients=train_c.astype(STATE_DTYPE),
        test_coefficients=test_c.astype(STATE_DTYPE),
    )


def dense_feature_data(
    n: int, n_train: int, n_test: int, n_features: int, rng: np.random.Generator
) -> FeatureData:
    """Dense RF data xi = sign(F^T z), z ~ N(0, I_D): every pattern mixes all D features."""
    require(n >= 2, f"N must be >= 2, got {n}")
    require(n_features >= 1, f"the number of features D must be >= 1, got {n_features}")
    features = random_states(n_features, n, rng)
    z = rng.standard_normal((n_train + n_test, n_features)).astype(STATE_DTYPE)
    patterns = _sign_with_random_ties(z @ features, rng)
    return FeatureData(
        train=patterns[:n_train],
        test=patterns[n_train:],
        features=features,
        train_coefficients=z[:n_train],
        test_coefficients=z[n_train:],
    )


def load_binary_digits(threshold: float = 8.0) -> np.ndarray:
    """The 1797 scikit-learn 8x8 digits (pixel values 0..16) as (1797, 64) +-1 patterns.

    Pixels above ``threshold`` become +1. Needs scikit-learn (extra ``memories``); the data ship
    with scikit-learn, so nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise UserError(
            "the digits data need scikit-learn: pip install 'attractor[memories]'"
        ) from err
    images = load_digits().data
    return np.where(images > threshold, 1.0, -1.0).astype(STATE_DTYPE)


def _distinct_digits(threshold: float) -> np.ndarray:
    """Binarised digits with duplicates removed (first occurrence kept, original order)."""
    images = load_binary_digits(threshold)
    _, first = np.unique(images, axis=0, return_index=True)
    return images[np.sort(first)]


@functools.lru_cache(maxsize=4)
def distinct_digit_count(threshold: float = 8.0) -> int:
    """How many distinct binarised digits there are (cached: every digits config checks it)."""
    return _distinct_digits(threshold).shape[0]


def split_digits(
    n_train: int, n_test: int, rng: np.random.Generator, threshold: float = 8.0
) -> FeatureData:
    """Disjoint random train/test subsets of the binarised digits; no features (D = 0)."""
    # Identical binarised images would let a "test" digit be a stored one: keep one of each.
    images = _distinct_digits(threshold)
    require(
        n_train + n_test <= images.shape[0],
        f"the digits give {images.shape[0]} distinct binarised images, fewer than "
        f"{n_train} training + {n_test} test; lower alpha or the test count",
    )
    order = rng.permutation(images.shape[0])
    empty = np.zeros((0, images.shape[1]), dtype=STATE_DTYPE)
    return FeatureData(
        train=images[order[:n_train]],
        test=images[order[n_train : n_train + n_test]],
        features=empty,
        train_coefficients=np.zeros((n_train, 0), dtype=STATE_DTYPE),
        test_coefficients=np.zeros((n_test, 0), dtype=STATE_DTYPE),
    )
