"""One training step of a UDDM and the evaluation NELBO: plain functions, no run directory.

The randomness of step k (batch order, diffusion times, corruption, dropout) is derived from
(seed, k) alone, so a run resumed from a checkpoint replays exactly what an uninterrupted run
would have done, and data-parallel ranks agree on the global batch.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext

import torch

from attractor.loss import nelbo_per_token, stratified_times
from attractor.loss_fused import fused_nelbo_per_token
from attractor.schedule import sigma_from_alpha


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of labels (stable across processes and Python versions)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_generator(seed: int, step: int, stream: str, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(derive_seed(seed, step, stream))


def batch_indices(num_train: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Positions in the training set of the global batch of ``step``: consecutive slices of a
    fresh seeded permutation per epoch (every sequence seen once per epoch). (batch,) int64."""
    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), num_train)
        perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(
            derive_seed(seed, epoch, "epoch")))
        out.extend(perm[offset: offset + batch_size - len(out)].tolist())
    return torch.tensor(out, dtype=torch.long)


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def loss_terms(model, x0: torch.Tensor, zt: torch.Tensor, t: torch.Tensor, schedule,
               amp_dtype=None, fused: bool = True, compiled: bool = False) -> torch.Tensor:
    """Per-token NELBO integrand (eq. 3) of clean ``x0`` and its corruption ``zt`` at times t.

    x0, zt (B, L) int64; t (B,) float. The network may run under bf16 autocast (logits included);
    the loss is computed in float32 or higher outside it, by the fused implementation
    (:mod:`attractor.loss_fused`, its K-wide kernels compiled if ``compiled``) or the reference
    one. Returns (B, L) float32.
    """
    alpha, dalpha = schedule.alpha(t), schedule.dalpha(t)
    with autocast_context(x0.device, amp_dtype):
        logits = model(zt, sigma_from_alpha(alpha))
    if fused:
        return fused_nelbo_per_token(logits, x0, zt, alpha, dalpha, compiled)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    return nelbo_per_token(log_probs, x0, zt, alpha, dalpha)


@torch.no_grad()
def evaluate_nelbo(model, sequences: torch.Tensor, mask: torch.Tensor, seed: int,
                   objective, batch_size: int = 64, eps: float = 1e-3) -> float:
    """Monte-Carlo NELBO per (non-pad) token of ``sequences`` with fixed, seeded noise.

    sequences (N, L) int64, mask (N, L) bool; ``objective`` (attractor.train.objectives) is the
    family's loss (its NELBO, or the autoregressive NLL), evaluated in its ``amp`` precision. The
    same seed gives the same t and z_t, so numbers from different checkpoints are comparable.
    Returns nats per token.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0.0
    gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "eval"))
    for start in range(0, len(sequences), batch_size):
        x0 = sequences[start: start + batch_size].to(device)
        m = mask[start: start + batch_size].to(device)
        t = stratified_times(len(x0), gen, eps, device=device)
        per_token = objective.loss(model, x0, objective.corrupt(x0, t, gen), t)
        total += float((per_token * m).sum())
        count += float(m.sum())
    model.train(was_training)
    return total / max(count, 1.0)


def learning_rate(step: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then constant (Duo's constant_warmup)."""
    return lr * min(1.0, (step + 1) / warmup) if warmup > 0 else lr


def ema_decay(step: int, decay: float) -> float:
    """EMA decay with the usual warm-up min(decay, (1 + k) / (10 + k)), so short runs are not
    dominated by the initial weights."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], params: dict[str, torch.Tensor], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * params, in place."""
    for name, p in params.items():
        ema[name].lerp_(p.detach(), 1.0 - decay)
