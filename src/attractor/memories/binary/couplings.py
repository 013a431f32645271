"""Classical coupling rules for binary memories: Hebbian (Hopfield) and pseudo-inverse.

Both follow scikit-learn conventions: ``__init__`` stores hyperparameters only, ``fit(patterns)``
returns ``self`` and leaves the learned (N, N) float32 coupling matrix in ``couplings_`` with a
zero diagonal (a neuron never feeds back onto itself, the condition of eq. 6).
"""

from __future__ import annotations

import numpy as np

from attractor.memories.binary.patterns import STATE_DTYPE, as_states


def hebbian_couplings(patterns: np.ndarray) -> np.ndarray:
    """J = (1/N) sum_mu xi^mu xi^mu^T with J_ii = 0.

    patterns: (P, N) +-1 float32. Returns (N, N) float32, symmetric.
    """
    n = patterns.shape[1]
    couplings = patterns.T @ patterns / n
    np.fill_diagonal(couplings, 0.0)
    return couplings.astype(STATE_DTYPE)


def pseudo_inverse_couplings(patterns: np.ndarray) -> np.ndarray:
    """Projector rule J = (1/N) sum_{mu,nu} xi^mu (C^+)_{mu nu} xi^nu^T, C = Xi Xi^T / N, J_ii = 0.

    Without the diagonal every pattern is a fixed point up to alpha -> 1 (Kanter and Sompolinsky
    1987), since h_i = xi_i (1 - J_ii) with J_ii ~ alpha. patterns: (P, N). Returns (N, N).
    """
    xi = patterns.astype(np.float64)
    n = xi.shape[1]
    correlation = xi @ xi.T / n  # (P, P)
    couplings = xi.T @ np.linalg.pinv(correlation, hermitian=True) @ xi / n
    np.fill_diagonal(couplings, 0.0)
    return couplings.astype(STATE_DTYPE)


class HebbianMemory:
    """The Hopfield network with Hebbian couplings (capacity alpha_c ~ 0.138)."""

    def fit(self, patterns: np.ndarray) -> HebbianMemory:
        self.couplings_ = hebbian_couplings(as_states(patterns))
        return self


class PseudoInverseMemory:
    """The projector (pseudo-inverse) rule: fixed points up to alpha = 1, basins vanish there."""

    def fit(self, patterns: np.ndarray) -> PseudoInverseMemory:
        self.couplings_ = pseudo_inverse_couplings(as_states(patterns))
        return self
