"""Binary associative memories: pseudo-likelihood couplings vs classical rules.

Section 3.1 of arXiv 2604.26841; docs/am.md.

Neurons s in {-1, +1}^N, couplings J (N, N) with a zero diagonal, zero-temperature retrieval
s_i <- sign(sum_j J_ij s_j) (eq. 6). Models follow scikit-learn conventions::

    memory = PseudoLikelihoodMemory(beta=0.1).fit(patterns)      # patterns: (P, N) of +-1
    result = synchronous(memory.couplings_, noisy_states)
    m = overlap(result.states, patterns)

``PseudoLikelihoodMemory(PLConfig(beta=0.1))`` is the same memory built from its config.

The heavier modules (the sweeps, figures and reports) are imported from their own modules.
"""

from attractor.memories.binary.couplings import (
    HebbianMemory,
    PseudoInverseMemory,
    hebbian_couplings,
    pseudo_inverse_couplings,
)
from attractor.memories.binary.data import (
    FeatureData,
    dense_feature_data,
    load_binary_digits,
    sparse_feature_data,
)
from attractor.memories.binary.dynamics import (
    DynamicsResult,
    asynchronous,
    glauber,
    run_dynamics,
    synchronous,
)
from attractor.memories.binary.measures import (
    BasinCurve,
    basin_curve,
    conditional_entropy,
    coupling_stats,
    final_overlaps,
    gardner_kappa_max,
    margins,
)
from attractor.memories.binary.patterns import as_states, flip_bits, overlap, random_states
from attractor.memories.binary.pseudolikelihood import (
    PLConfig,
    PseudoLikelihoodMemory,
    pseudo_likelihood_gradient,
    pseudo_likelihood_loss,
)

__all__ = [
    "BasinCurve",
    "DynamicsResult",
    "FeatureData",
    "HebbianMemory",
    "PLConfig",
    "PseudoInverseMemory",
    "PseudoLikelihoodMemory",
    "as_states",
    "asynchronous",
    "basin_curve",
    "conditional_entropy",
    "coupling_stats",
    "dense_feature_data",
    "final_overlaps",
    "flip_bits",
    "gardner_kappa_max",
    "glauber",
    "hebbian_couplings",
    "load_binary_digits",
    "margins",
    "overlap",
    "pseudo_inverse_couplings",
    "pseudo_likelihood_gradient",
    "pseudo_likelihood_loss",
    "random_states",
    "run_dynamics",
    "sparse_feature_data",
    "synchronous",
]
