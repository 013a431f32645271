"""Conditional entropy vs energy curvature (Appendix C of arXiv 2604.26841), checked exactly.

Setting: clean data x0 ~ K^-1 sum_mu N(xi_mu, s^2 I) (the training points blurred by a width s),
observation x_t = x0 + sigma eps. The posterior is again a Gaussian mixture::

    p(x0 | x_t) = sum_mu w_mu N(x0; m_mu, tau^2 I),
    tau^2 = s^2 sigma^2 / (s^2 + sigma^2),  m_mu = (sigma^2 xi_mu + s^2 x_t) / (s^2 + sigma^2),
    w_mu = softmax_mu(-||x_t - xi_mu||^2 / (2 (s^2 + sigma^2))).

Its energy -log p(x0 | x_t) is the DenseAM energy of the patterns m_mu at noise tau with log
prior weights log w_mu, divided by tau^2, so its Hessian is (I - Cov_q(m) / tau^2) / tau^2.
Appendix C's Laplace approximation around the mode x0* gives::

    H[x0 | x_t] ~= d/2 log(2 pi e) - 1/2 log det Hess(x0*)        (eqs. 21-23)

We compare it with the exact differential entropy, estimated by Monte Carlo from exact samples
and the exact log density, over many x_t and noise levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attractor.memories.dense import energy as am


@dataclass(frozen=True)
class Posterior:
    """p(x0 | x_t) for one x_t: means (K, d), log_weights (K,), tau (the component std)."""

    means: torch.Tensor
    log_weights: torch.Tensor
    tau: float


def posterior(xt: torch.Tensor, patterns: torch.Tensor, width: float, sigma: float) -> Posterior:
    """The Gaussian-mixture posterior of clean data given ``xt`` (d,)."""
    total = width**2 + sigma**2
    means = (sigma**2 * patterns + width**2 * xt) / total
    logits = -((xt - patterns) ** 2).sum(-1) / (2.0 * total)
    return Posterior(means, torch.log_softmax(logits, 0), math.sqrt(width**2 * sigma**2 / total))


def log_density(x0: torch.Tensor, post: Posterior) -> torch.Tensor:
    """log p(x0 | x_t) for rows of ``x0`` (B, d): (B,)."""
    d = x0.shape[-1]
    logits = am._logits(x0, post.means, post.tau, post.log_weights)
    return torch.logsumexp(logits, -1) - 0.5 * d * math.log(2 * math.pi * post.tau**2)


def exact_entropy(post: Posterior, n: int, generator: torch.Generator) -> float:
    """Monte Carlo estimate of H[x0 | x_t] = -E log p(x0 | x_t) from ``n`` exact samples."""
    comp = torch.multinomial(post.log_weights.exp(), n, replacement=True, generator=generator)
    noise = torch.randn(n, post.means.shape[1], generator=generator, dtype=post.means.dtype)
    x0 = post.means[comp] + post.tau * noise
    return float(-log_density(x0, post).mean())


def mode(post: Posterior, starts: int = 8) -> torch.Tensor:
    """The most probable x0 (d,): fixed-point descent from the heaviest components' means."""
    top = post.log_weights.topk(min(starts, post.means.shape[0])).indices
    ends, _, _ = am.fixed_point(post.means[top], post.means, post.tau, tol=1e-10,
                                log_weights=post.log_weights)
    e = am.energy(ends, post.means, post.tau, post.log_weights)
    return ends[e.argmin()]


def laplace_entropy(post: Posterior) -> tuple[float, float]:
    """(Laplace entropy, -1/2 log det Hess) at the mode; the Hessian is of -log p(x0 | x_t)."""
    x = mode(post)[None]
    hess = am.hessian(x, post.means, post.tau, post.log_weights)[0] / post.tau**2
    eig = torch.linalg.eigvalsh(hess)
    half_logdet = -0.5 * float(eig.clamp_min(1e-300).log().sum())
    d = x.shape[-1]
    return 0.5 * d * math.log(2 * math.pi * math.e) + half_logdet, half_logdet


def effective_components(post: Posterior) -> float:
    """1 / sum_mu w_mu^2: about 1 when one component dominates the posterior."""
    return float(1.0 / (2 * post.log_weights).exp().sum())


def entropy_rows(patterns: torch.Tensor, width: float, sigmas: list[float], points: int,
                 generator: torch.Generator, mc_samples: int = 4000) -> list[dict]:
    """One row per (sigma, x_t): exact and Laplace entropies; x_t drawn from the forward process."""
    rows = []
    k, d = patterns.shape
    for sigma in sigmas:
        idx = torch.randint(k, (points,), generator=generator)
        noise = torch.randn(points, d, generator=generator, dtype=patterns.dtype)
        xts = patterns[idx] + math.sqrt(width**2 + sigma**2) * noise
        for xt in xts:
            post = posterior(xt, patterns, width, sigma)
            lap, half_logdet = laplace_entropy(post)
            rows.append({
                "sigma": sigma,
                "exact": exact_entropy(post, mc_samples, generator),
                "laplace": lap,
                "neg_half_logdet": half_logdet,
                "effective_components": effective_components(post),
            })
    return rows


def agreement(rows: list[dict]) -> dict[str, float]:
    """Pearson r between exact entropy and -1/2 log det, and the Laplace error (mean abs, mean)."""
    exact = torch.tensor([r["exact"] for r in rows], dtype=torch.float64)
    lap = torch.tensor([r["laplace"] for r in rows], dtype=torch.float64)
    half = torch.tensor([r["neg_half_logdet"] for r in rows], dtype=torch.float64)
    r = torch.corrcoef(torch.stack([exact, half]))[0, 1] if len(rows) > 1 else torch.tensor(1.0)
    return {
        "pearson_r": float(r),
        "mean_abs_error": float((lap - exact).abs().mean()),
        "mean_error": float((lap - exact).mean()),
        "n": len(rows),
    }
