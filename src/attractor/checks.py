"""Checks of a loaded model before it is probed.

Finite weights do not guarantee finite outputs: a model whose logits overflow (in bf16, or
after a loss spike) gives NaN entropies for every sequence, and nothing a probe computes from
them means anything. :func:`outputs_finite` runs the denoiser once on a few of the run's
sequences, as the entropy probe does (clean sequences at t = 1e-5), so that such a model is
refused (``attractor probe``) or skipped (``attractor sweep``) with one line.
"""

from __future__ import annotations

import torch

from attractor.schedule import sigma_from_alpha

CHECK_TIME = 1e-5
CHECK_ROWS = 8


def outputs_finite(run) -> bool:
    """Whether the denoiser of ``run`` (an :class:`attractor.run.Run`) gives finite logits on
    up to 8 of its training (or held-out) sequences at t = 1e-5."""
    ids = run.train_ids if len(run.train_ids) else run.test_ids
    if len(ids) == 0:
        return True
    zt = run.dataset.sequences[ids[:CHECK_ROWS]]
    t = torch.full((len(zt),), CHECK_TIME, dtype=torch.float64)
    sigma = torch.zeros(len(zt)) if run.schedule is None else \
        sigma_from_alpha(run.schedule.alpha(t)).float()
    logits = run.denoiser()(zt, sigma)
    return bool(torch.isfinite(logits).all())
