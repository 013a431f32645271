"""The forward (noising) process of uniform-state diffusion, eq. (1) of the paper.

Notation:
    x0       (B, L) int64   clean token ids in [0, K)
    zt       (B, L) int64   noisy token ids
    alpha_t  (B,) float     signal level of each sequence's time t
    K        vocabulary size (every id, including special ones, can be drawn by the noise)

q(z_t | x) = Cat(alpha_t x + (1 - alpha_t) / K 1): each position is kept with probability alpha_t
and otherwise resampled uniformly over all K ids, the original included, so
P(z_t != x) = (1 - alpha_t)(1 - 1/K).
"""

from __future__ import annotations

import torch

from attractor.streams import integers, uniform


def prior_sample(shape: tuple[int, ...], vocab_size: int, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw i.i.d. uniform token ids, the t = 1 limit of eq. (1). Returns int64 of ``shape``."""
    return integers(generator, 0, vocab_size, shape, device)


def q_xt(x0: torch.Tensor, alpha_t: torch.Tensor, vocab_size: int,
         generator: torch.Generator) -> torch.Tensor:
    """Sample z_t ~ q(z_t | x0), eq. (1).

    Args:
        x0: (B, L) int64 clean ids.
        alpha_t: (B,) or (B, 1) or scalar float, the signal level per sequence.
        vocab_size: K.
        generator: the source of randomness.
    Returns:
        zt: (B, L) int64.
    """
    alpha = torch.as_tensor(alpha_t, dtype=torch.float32, device=x0.device)
    alpha = alpha.reshape(-1, 1) if alpha.ndim else alpha
    resample = uniform(generator, x0.shape, x0.device) >= alpha                   # w.p. 1-alpha
    noise = integers(generator, 0, vocab_size, x0.shape, x0.device)
    return torch.where(resample, noise, x0)


def corrupt_exactly(x0: torch.Tensor, n: int | torch.Tensor, vocab_size: int,
                    generator: torch.Generator,
                    allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Change exactly ``n`` positions of each sequence to a different token (Experiment 1).

    Positions are drawn uniformly without replacement among ``allowed`` ones; each chosen position
    gets a token drawn uniformly from the K - 1 ids other than its current one.

    Args:
        x0: (B, L) int64 clean ids.
        n: int or (B,) int64, how many positions to change in each sequence; must not exceed the
            number of allowed positions of that sequence.
        vocab_size: K >= 2.
        generator: the source of randomness.
        allowed: optional (B, L) bool; positions that may be changed (e.g. not padding).
    Returns:
        zt: (B, L) int64 with exactly n[b] positions differing from x0[b].
    """
    B, L = x0.shape
    allowed = torch.ones_like(x0, dtype=torch.bool) if allowed is None else allowed
    n = torch.as_tensor(n, device=x0.device).expand(B)
    assert bool((n <= allowed.sum(1)).all()), "cannot corrupt more positions than are allowed"
    keys = uniform(generator, (B, L), x0.device)
    keys = keys.masked_fill(~allowed, 2.0)                 # disallowed positions sort last
    rank = keys.argsort(dim=1).argsort(dim=1)              # (B, L) rank of each position
    chosen = rank < n[:, None]
    shift = integers(generator, 1, vocab_size, (B, L), x0.device)
    return torch.where(chosen, (x0 + shift) % vocab_size, x0)
