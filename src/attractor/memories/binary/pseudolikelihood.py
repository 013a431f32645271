"""The pseudo-likelihood associative memory (§3.1 of the paper, D'Amico et al. 2026).

Notation: couplings J (N, N), non-symmetric, J_ii = 0; fields h^mu_i = sum_j J_ij xi^mu_j;
inverse temperature beta. The conditional of eq. (9) is p(s_i | s_-i) = sigma(2 beta s_i h_i),
so the negative log pseudo-likelihood of eq. (10), divided by beta and averaged over mu and i, is

    l(J) = (1/PN) sum_{mu,i} [ -xi_i h_i + beta^-1 log 2cosh(beta h_i) ]

with gradient (eq. 11)

    dl/dJ_ij = -(1/PN) sum_mu xi_i xi_j [1 - tanh(beta xi_i h_i)],

a Hebbian term xi_i xi_j weighted by a factor that decays with the margin xi_i h_i. The rows of
J decouple: each neuron is a logistic regression of its bit on the others.
"""

from __future__ import annotations

import numpy as np

from attractor.errors import require
from attractor.memories.binary.couplings import hebbian_couplings
from attractor.memories.binary.patterns import STATE_DTYPE, as_states

LOG_EVERY = 10


def log_2cosh(x: np.ndarray) -> np.ndarray:
    """log(2 cosh x) without overflow: |x| + log(1 + exp(-2|x|))."""
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax))


def _loss_from_fields(fields: np.ndarray, patterns: np.ndarray, beta: float) -> float:
    per_site = -patterns * fields + log_2cosh(beta * fields) / beta
    return float(per_site.mean())


def _gradient_from_fields(fields: np.ndarray, patterns: np.ndarray, beta: float) -> np.ndarray:
    p, n = patterns.shape
    # xi_i [1 - tanh(beta xi_i h_i)] = xi_i - tanh(beta h_i), since tanh is odd and xi_i = +-1.
    weights = patterns - np.tanh(beta * fields)  # (P, N)
    gradient = -(weights.T @ patterns) / (p * n)  # (N, N): sum over mu of w^mu_i xi^mu_j
    np.fill_diagonal(gradient, 0.0)
    return gradient


def pseudo_likelihood_loss(couplings: np.ndarray, patterns: np.ndarray, beta: float) -> float:
    """Eq. (10) divided by beta and by P N. couplings (N, N), patterns (P, N) +-1."""
    return _loss_from_fields(patterns @ couplings.T, patterns, beta)


def pseudo_likelihood_gradient(
    couplings: np.ndarray, patterns: np.ndarray, beta: float
) -> np.ndarray:
    """Eq. (11): (N, N) gradient of :func:`pseudo_likelihood_loss`, diagonal set to zero."""
    return _gradient_from_fields(patterns @ couplings.T, patterns, beta)


class PseudoLikelihoodMemory:
    """Associative memory trained by full-batch gradient descent on the pseudo-likelihood.

    Parameters
    ----------
    beta : inverse temperature of eq. (9). With plain gradient descent the trajectory of beta*J
        depends only on beta*learning_rate and beta*J_init, so beta mostly sets how strongly the
        Hebbian initialisation is felt (small beta: weak prior, margins driven by the data).
    learning_rate, n_epochs : plain full-batch gradient descent.
    clip_norm : the gradient is rescaled to at most this Frobenius norm (stabilises early steps).
    init : "hebb" (J = Hebbian couplings, as in the reference recipe) or "zeros".

    Learned state: ``couplings_`` (N, N) float32 with zero diagonal, ``loss_`` (the loss of the
    final couplings), ``loss_curve_`` ((epoch, loss) before the step, every LOG_EVERY epochs: the
    loss costs as much as a third of an epoch, so it is not evaluated at every one).
    """

    def __init__(
        self,
        beta: float = 0.1,
        learning_rate: float = 100.0,
        n_epochs: int = 400,
        clip_norm: float = 20.0,
        init: str = "hebb",
    ) -> None:
        self.beta = beta
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.clip_norm = clip_norm
        self.init = init

    def check_params(self) -> None:
        require(self.beta > 0, f"beta must be > 0, got {self.beta}")
        require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        require(self.n_epochs >= 0, f"n_epochs must be >= 0, got {self.n_epochs}")
        require(self.clip_norm > 0, f"clip_norm must be > 0, got {self.clip_norm}")
        require(
            self.init in ("hebb", "zeros"), f"init must be 'hebb' or 'zeros', not {self.init!r}"
        )

    def fit(self, patterns: np.ndarray) -> PseudoLikelihoodMemory:
        self.check_params()
        xi = as_states(patterns)
        n = xi.shape[1]
        if self.init == "hebb":
            couplings = hebbian_couplings(xi)
        else:
            couplings = np.zeros((n, n), dtype=STATE_DTYPE)
        beta = np.float32(self.beta)
        losses = []
        for epoch in range(self.n_epochs):
            fields = xi @ couplings.T  # (P, N), shared by the loss and its gradient
            if epoch % LOG_EVERY == 0:
                losses.append((epoch, _loss_from_fields(fields, xi, beta)))
            gradient = _gradient_from_fields(fields, xi, beta)
            norm = float(np.linalg.norm(gradient))
            scale = min(1.0, self.clip_norm / norm) if norm > 0 else 0.0
            couplings -= np.float32(self.learning_rate * scale) * gradient
        self.couplings_ = couplings
        self.loss_curve_ = losses
        self.loss_ = pseudo_likelihood_loss(couplings, xi, beta)
        return self
