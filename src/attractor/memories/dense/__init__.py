"""Continuous diffusion as a Dense Associative Memory (Pham et al., arXiv 2505.21777).

- :mod:`~attractor.memories.dense.energy`: the exact empirical DenseAM (energy, denoiser, score,
  Hessian, fixed-point minima).
- :mod:`~attractor.memories.dense.score_model` and :mod:`~attractor.memories.dense.samplers`: a
  learned VE score and its Euler-Maruyama / probability-flow samplers.
- :mod:`~attractor.memories.dense.classify`: memorised / spurious / generalised, basin sizes.
- :mod:`~attractor.memories.dense.entropy`: conditional entropy vs curvature (Appendix C).
- :mod:`~attractor.memories.dense.experiments`: the ``circle`` and ``digits`` experiments.

The energy function itself is ``attractor.memories.dense.energy.energy`` (the package attribute
``energy`` is its module).
"""

from attractor.memories.dense.energy import (
    Minima,
    denoise,
    energy_grad,
    find_minima,
    fixed_point,
    hessian,
    score,
)

__all__ = [
    "Minima",
    "denoise",
    "energy_grad",
    "find_minima",
    "fixed_point",
    "hessian",
    "score",
]
