"""The pseudo-likelihood associative memory (§3.1 of arXiv 2604.26841; docs/am.md).

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

from dataclasses import dataclass, replace

import numpy as np

from attractor.config import check, setting
from attractor.errors import UserError
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


INITS = ("hebb", "zeros")


@dataclass(frozen=True)
class PLConfig:
    """Pseudo-likelihood training: Hebbian start, plain full-batch descent, small beta, clipping.

    With plain gradient descent the trajectory of beta*J depends only on beta*learning_rate and
    beta*J_init, so beta mostly sets how strongly the Hebbian start is felt (small beta: a weak
    prior, margins driven by the data).
    """

    beta: float = setting(0.1, help="PL inverse temperature beta of p(s_i | s_-i), eq. (9)")
    learning_rate: float = setting(100.0, help="PL learning rate of full-batch gradient descent",
                                   flag="lr")
    n_epochs: int = setting(400, help="PL full-batch epochs (0: the starting couplings)",
                            flag="epochs")
    clip_norm: float = setting(20.0, help="PL gradient-norm clip: each step's gradient is "
                               "rescaled to at most this Frobenius norm", flag="clip")
    init: str = setting("hebb", help="PL starting couplings: hebb (Hebbian) | zeros")

    def __post_init__(self) -> None:
        check(self.beta > 0, "beta", f"must be > 0; got {self.beta}")
        check(self.learning_rate > 0, "learning_rate", f"must be > 0; got {self.learning_rate}")
        check(self.n_epochs >= 0, "n_epochs", f"must be >= 0; got {self.n_epochs}")
        check(self.clip_norm > 0, "clip_norm", f"must be > 0; got {self.clip_norm}")
        check(self.init in INITS, "init", f"is {self.init!r}, not one of {', '.join(INITS)}")


class PseudoLikelihoodMemory:
    """Associative memory trained by full-batch gradient descent on the pseudo-likelihood.

    ``PseudoLikelihoodMemory(PLConfig(...))`` or, equivalently, with the fields of
    :class:`PLConfig` as keywords: ``PseudoLikelihoodMemory(beta=0.1, n_epochs=50)`` (keywords
    given with a config replace its fields). Bad values raise :class:`ConfigError` at once.

    Learned state: ``couplings_`` (N, N) float32 with zero diagonal, ``loss_`` (the loss of the
    final couplings), ``loss_curve_`` ((epoch, loss) before the step, every LOG_EVERY epochs: the
    loss costs as much as a third of an epoch, so it is not evaluated at every one).
    """

    def __init__(self, config: PLConfig | None = None, **params) -> None:
        self.config = PLConfig(**params) if config is None else replace(config, **params)

    def fit(self, patterns: np.ndarray) -> PseudoLikelihoodMemory:
        """Train on ``patterns`` (P, N) of +-1; returns self."""
        cfg = self.config
        xi = as_states(patterns)
        n = xi.shape[1]
        if cfg.init == "hebb":
            couplings = hebbian_couplings(xi)
        else:
            couplings = np.zeros((n, n), dtype=STATE_DTYPE)
        beta = np.float32(cfg.beta)
        losses = []
        for epoch in range(cfg.n_epochs):
            fields = xi @ couplings.T  # (P, N), shared by the loss and its gradient
            if epoch % LOG_EVERY == 0:
                losses.append((epoch, _loss_from_fields(fields, xi, beta)))
            gradient = _gradient_from_fields(fields, xi, beta)
            norm = float(np.linalg.norm(gradient))
            scale = min(1.0, cfg.clip_norm / norm) if norm > 0 else 0.0
            with np.errstate(over="ignore", invalid="ignore"):     # checked just below
                couplings -= np.float32(cfg.learning_rate * scale) * gradient
            if not np.isfinite(couplings).all():    # overflow: every later number is NaN
                raise UserError(f"pseudo-likelihood training diverged at epoch {epoch + 1}: the "
                                f"couplings overflowed with learning rate "
                                f"{cfg.learning_rate:g}; lower --lr")
        self.couplings_ = couplings
        self.loss_curve_ = losses
        self.loss_ = pseudo_likelihood_loss(couplings, xi, beta)
        return self
