"""Training sets for the continuous experiments: points on a circle, and 8x8 digits.

Every loader returns float64 tensors of shape (K, d); randomness comes only from the generator.
"""

from __future__ import annotations

import math

import torch

from attractor.errors import UserError, require


def circle_points(k: int, generator: torch.Generator, radius: float = 1.0) -> torch.Tensor:
    """K points at uniformly random angles on the circle of ``radius``: (K, 2) float64."""
    require(k >= 1, f"the training size K must be at least 1, got {k}")
    angles = 2.0 * math.pi * torch.rand(k, generator=generator, dtype=torch.float64)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=-1)


def digits_images() -> torch.Tensor:
    """All 1797 scikit-learn 8x8 digit images, scaled from [0, 16] to [-1, 1]: (1797, 64) float64.

    The images ship inside scikit-learn, so nothing is downloaded.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise UserError("the digits need scikit-learn: pip install 'attractor[memories]'") from err
    data = torch.as_tensor(load_digits().data, dtype=torch.float64)
    return data / 8.0 - 1.0


def split_digits(
    k: int, generator: torch.Generator, held_out: int = 300
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random training set of K digits and a disjoint held-out set: ((K, 64), (H, 64)).

    The held-out images are the same for every K drawn with the same generator state, so the
    training sets of different K are nested subsets of one permutation.
    """
    images = digits_images()
    n = images.shape[0]
    require(1 <= k <= n - held_out, f"K must be in 1..{n - held_out} for the digits, got {k}")
    order = torch.randperm(n, generator=generator)
    return images[order[held_out:][:k]], images[order[:held_out]]


def nearest_neighbour_distances(points: torch.Tensor, others: torch.Tensor | None = None,
                                k: int = 1) -> torch.Tensor:
    """Distance of each row of ``points`` (B, d) to its k-th nearest row of ``others`` (K, d).

    With ``others`` None the set is ``points`` itself and a point is not its own neighbour.
    Returns (B,) float; +inf where fewer than k neighbours exist.
    """
    same = others is None
    others = points if same else others
    dist = torch.cdist(points, others)
    if same:
        dist.fill_diagonal_(math.inf)
    if dist.shape[1] < k:
        return torch.full((points.shape[0],), math.inf, dtype=points.dtype)
    return dist.topk(k, dim=1, largest=False).values[:, k - 1]


def median_spacing(patterns: torch.Tensor) -> float:
    """Median nearest-neighbour distance within the training set (the unit of every threshold)."""
    require(patterns.shape[0] >= 2, "the spacing of a training set needs at least two points")
    return float(nearest_neighbour_distances(patterns).median())
