"""The empirical Dense Associative Memory of a diffusion model at one noise level.

Glossary (Pham et al., arXiv 2505.21777; docs/dense.md):

- ``patterns`` xi: (K, d) the stored memories = the K training points.
- ``sigma``: the noise level of the VE process; ``beta = 1 / sigma**2`` is the inverse temperature.
- ``log_weights`` a: (K,) optional log prior weights of the patterns (0 for the plain memory).
- ``p(x)``: (B, K) the softmax responsibilities softmax_mu(a_mu - beta ||x - xi_mu||^2 / 2);
  in attention words x is the query, xi the keys and the values, beta the scaling.

Energy (the DenseAM energy of Pham et al.; docs/dense.md)::

    E(x) = -(1/beta) log sum_mu exp(a_mu - beta ||x - xi_mu||^2 / 2)

so that -sigma^2 log p_sigma(x) = E(x) + const for the smoothed empirical density
p_sigma = K^-1 sum_mu N(xi_mu, sigma^2 I). Derived quantities, all closed form:

- ideal denoiser  D(x) = sum_mu p_mu(x) xi_mu         (one modern-Hopfield update)
- gradient        grad E(x) = x - D(x)
- score           grad log p_sigma(x) = (D(x) - x) / sigma^2
- Hessian         Hess E(x) = I - Cov_{p(x)}(xi) / sigma^2

Iterating x <- D(x) is gradient descent on E with unit step; because every Hessian eigenvalue is
at most 1 the step never overshoots and E decreases monotonically (mean shift). Every function
here works in the dtype of its inputs; use float64 for the Hessian and for minima.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


def _logits(x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None) -> Tensor:
    """a_mu - ||x - xi_mu||^2 / (2 sigma^2): (B, K). Expanded so (B, K, d) is never built."""
    sq = (x * x).sum(-1, keepdim=True) - 2.0 * x @ patterns.T + (patterns * patterns).sum(-1)
    logits = -sq.clamp_min(0.0) / (2.0 * sigma**2)
    return logits if log_weights is None else logits + log_weights


def responsibilities(
    x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None
) -> Tensor:
    """p(x): (B, K) softmax weights of the patterns for queries ``x`` (B, d)."""
    return torch.softmax(_logits(x, patterns, sigma, log_weights), dim=-1)


def energy(x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None) -> Tensor:
    """E(x): (B,) the DenseAM energy of queries ``x`` (B, d)."""
    return -(sigma**2) * torch.logsumexp(_logits(x, patterns, sigma, log_weights), dim=-1)


def denoise(x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None) -> Tensor:
    """D(x) = E[xi | x]: (B, d), the ideal denoiser of the empirical data at noise ``sigma``."""
    return responsibilities(x, patterns, sigma, log_weights) @ patterns


def energy_grad(
    x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None
) -> Tensor:
    """grad E(x) = x - D(x): (B, d)."""
    return x - denoise(x, patterns, sigma, log_weights)


def score(x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None) -> Tensor:
    """grad log p_sigma(x) = (D(x) - x) / sigma^2: (B, d) (Tweedie's formula)."""
    return (denoise(x, patterns, sigma, log_weights) - x) / sigma**2


def hessian(x: Tensor, patterns: Tensor, sigma: float, log_weights: Tensor | None = None) -> Tensor:
    """Hess E(x) = I - Cov_p(xi) / sigma^2: (B, d, d), symmetric."""
    p = responsibilities(x, patterns, sigma, log_weights)  # (B, K)
    mean = p @ patterns  # (B, d)
    second = torch.einsum("bk,ki,kj->bij", p, patterns, patterns)  # (B, d, d)
    cov = second - mean[:, :, None] * mean[:, None, :]
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return eye - cov / sigma**2


def fixed_point(
    x: Tensor,
    patterns: Tensor,
    sigma: float,
    tol: float = 1e-9,
    max_iter: int = 5000,
    log_weights: Tensor | None = None,
) -> tuple[Tensor, Tensor, int]:
    """Iterate x <- D(x) until every step is shorter than ``tol``.

    Returns (x_final (B, d), converged (B,) bool, iterations used). Rows that have converged are
    frozen, so the cost falls as the batch settles.
    """
    x = x.clone()
    active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    used = 0
    for used in range(1, max_iter + 1):
        idx = active.nonzero().squeeze(-1)
        if idx.numel() == 0:
            break
        new = denoise(x[idx], patterns, sigma, log_weights)
        step = (new - x[idx]).norm(dim=-1)
        x[idx] = new
        active[idx[step < tol]] = False
    return x, ~active, used


def deduplicate(points: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """Greedy clustering: each point joins the first representative within ``radius``.

    Returns (representatives (M, d), labels (B,) int64 into them); representatives are the
    cluster means, ordered by first appearance.
    """
    reps: list[Tensor] = []
    labels = torch.empty(points.shape[0], dtype=torch.long)
    for i, p in enumerate(points):
        if reps:
            dist = (torch.stack(reps) - p).norm(dim=-1)
            j = int(dist.argmin())
            if float(dist[j]) <= radius:
                labels[i] = j
                continue
        reps.append(p)
        labels[i] = len(reps) - 1
    groups = [points[labels == j].mean(0) for j in range(len(reps))]
    return torch.stack(groups), labels


@dataclass(frozen=True)
class Minima:
    """Distinct local minima of E found from a batch of starts.

    points: (M, d); counts: (M,) how many starts ended there; energies: (M,);
    eigenvalues: (M, d) of Hess E, ascending; iterations: fixed-point steps used.
    """

    points: Tensor
    counts: Tensor
    energies: Tensor
    eigenvalues: Tensor
    converged_fraction: float
    iterations: int


def find_minima(
    patterns: Tensor,
    sigma: float,
    starts: Tensor,
    tol: float = 1e-9,
    max_iter: int = 5000,
    merge_radius: float | None = None,
) -> Minima:
    """Run x <- D(x) from ``starts`` (B, d), merge endpoints closer than ``merge_radius``.

    ``merge_radius`` defaults to 1e-3 sigma: far below any basin, far above the residual of
    converged iterates. Endpoints that are saddles (a negative eigenvalue) cannot appear
    generically, but the eigenvalues are returned so callers can check.
    """
    radius = 1e-3 * sigma if merge_radius is None else merge_radius
    final, converged, used = fixed_point(starts, patterns, sigma, tol, max_iter)
    points, labels = deduplicate(final, radius)
    counts = torch.bincount(labels, minlength=points.shape[0])
    # One more refinement from the cluster means so the curvature is taken at the minimum itself.
    points, _, _ = fixed_point(points, patterns, sigma, tol, max_iter)
    eig = torch.linalg.eigvalsh(hessian(points, patterns, sigma))
    return Minima(
        points=points,
        counts=counts,
        energies=energy(points, patterns, sigma),
        eigenvalues=eig,
        converged_fraction=float(converged.double().mean()),
        iterations=used,
    )
