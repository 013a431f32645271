"""Binary states s in {-1, +1}^N: validation, overlaps and bit flips.

Notation (§3.1 of arXiv 2604.26841): N neurons, P stored patterns xi^mu (rows of ``patterns``),
load alpha = P / N. States are float32 arrays of +-1 so that fields h = s J^T are single matmuls.
"""

from __future__ import annotations

import numpy as np

from attractor.errors import UserError, require

STATE_DTYPE = np.float32


def as_states(states: np.ndarray, name: str = "patterns") -> np.ndarray:
    """Validate a (B, N) or (N,) array of +-1 and return it as a (B, N) float32 array.

    Raises :class:`UserError` for anything that is not a +-1 matrix with N >= 2 neurons.
    """
    array = np.asarray(states)
    if array.ndim == 1:
        array = array[None, :]
    require(array.ndim == 2, f"{name} must be a (count, N) array, got shape {array.shape}")
    require(array.shape[0] >= 1, f"{name} is empty: give at least one pattern")
    require(array.shape[1] >= 2, f"{name} need N >= 2 neurons, got N = {array.shape[1]}")
    if not np.issubdtype(array.dtype, np.number) and array.dtype != bool:
        raise UserError(f"{name} must be numeric +-1 values, got dtype {array.dtype}")
    values = np.unique(array)
    if not np.all(np.isin(values, (-1, 1))):
        shown = ", ".join(f"{v:g}" for v in values[:5].astype(float))
        raise UserError(
            f"{name} must contain only -1 and +1 (found {shown}); map 0/1 data with 2*x - 1"
        )
    return array.astype(STATE_DTYPE, copy=True)


def overlap(states: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Row-wise overlap m = (1/N) sum_i s_i xi_i.

    states, targets: (B, N) +-1 arrays (paired by row). Returns (B,) float64 in [-1, 1].
    """
    return (
        np.einsum("bn,bn->b", states.astype(np.float64), targets.astype(np.float64))
        / (states.shape[1])
    )


def flip_bits(states: np.ndarray, n_flips: int, rng: np.random.Generator) -> np.ndarray:
    """Copy of ``states`` with exactly ``n_flips`` distinct random bits flipped in each row.

    states: (B, N). The start overlap with the original is then m0 = 1 - 2 n_flips / N.
    """
    batch, n = states.shape
    assert 0 <= n_flips <= n
    out = states.copy()
    if n_flips == 0:
        return out
    # The first n_flips columns of a random permutation per row: argpartition of uniform keys.
    keys = rng.random((batch, n))
    cols = np.argpartition(keys, n_flips - 1, axis=1)[:, :n_flips]
    rows = np.repeat(np.arange(batch), n_flips)
    out[rows, cols.ravel()] *= -1
    return out


def random_states(count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(count, n) i.i.d. uniform +-1 states (float32)."""
    return (2 * rng.integers(0, 2, size=(count, n)) - 1).astype(STATE_DTYPE)
