"""Memory estimates that refuse impossible sizes before anything is allocated.

A size given by mistake (``--batch-size 1e8``, ``--block-length 65536``, ``--bootstrap 1e8``)
would otherwise run until the machine swaps or the process is killed. Each check estimates the
bytes of the largest allocation of that step, a lower bound rather than a peak, so that a
refusal is certain to be right, and compares it with the memory of the device:

    training_step_bytes(cfg, K, world)   one optimiser step of one process: the batch, the
                                         activations kept for the backward pass, the attention
                                         scores, what the head keeps K-wide (the logits and
                                         their gradient, or the fused head's one gradient) and
                                         the model with its optimiser
    bootstrap_bytes(resamples, rows)     a vectorised percentile bootstrap: (resamples, rows)
                                         indices and values
    pool_bytes(sequences, L)             a data pool: (N, L) int64 sequences and bool mask

:func:`require_fits` raises a one-line :class:`UserError` with the estimate and the memory
available.
"""

from __future__ import annotations

import os

from attractor.errors import UserError


def human(n: float) -> str:
    """Bytes as a short number with a binary unit: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def host_memory() -> int:
    """Bytes of memory this process can expect to use: MemAvailable where Linux reports it,
    else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):     # pragma: no cover - exotic platforms
        return 1 << 62


def device_memory(device) -> int:
    """Bytes of memory of a torch device (its total for CUDA, the host's otherwise)."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    return host_memory()


def require_fits(what: str, need: int, available: int, fix: str) -> None:
    """One-line error when ``need`` bytes exceed ``available``."""
    if need > available:
        raise UserError(f"{what} needs about {human(need)} of memory (estimated), more than "
                        f"the {human(available)} available; {fix}")


def training_step_bytes(cfg, vocab_size: int, world: int = 1, head: str = "logits",
                        product_bytes: int = 2) -> int:
    """A lower bound on the memory of one training step of one process (see the module
    docstring); ``cfg`` is a TrainConfig, ``vocab_size`` the model's K, ``head`` the resolved
    head (attractor.head_loss) and ``product_bytes`` the bytes of one logit (2 under bf16)."""
    m, L, K = cfg.model, cfg.data.block_length, vocab_size
    rows = max(1, cfg.batch_size // cfg.grad_accum // max(1, world))
    tokens = rows * L
    batch = cfg.batch_size * L * (8 + 8 + 1)          # the global batch, its z_t and mask
    activations = tokens * m.hidden * 4 * (4 + 2 * m.mlp_ratio) * m.blocks
    attention = rows * m.heads * L * L * 4 * m.blocks     # one float32 score matrix per block
    kept = {"logits": 2, "fused": 1}.get(head, 0)     # logits + gradient, D, or no (N, K) tensor
    logits = tokens * K * product_bytes * kept
    params = (K * m.hidden * 2 + m.blocks * 12 * m.hidden ** 2) * 4 * 5   # + grad, Adam, EMA
    return batch + activations + attention + logits + params


def check_training(cfg, vocab_size: int, device, world: int = 1) -> None:
    """Refuse a training config whose single step cannot fit on ``device``; ``vocab_size`` is
    the tokenizer's K (the masked model has one id more)."""
    from attractor.device import resolve_precision
    from attractor.head_loss import resolve_head
    from attractor.train.objectives import model_vocab

    K = model_vocab(cfg.family, vocab_size)
    head = resolve_head(cfg.head, K, cfg.compile)
    if cfg.family == "masked" and head == "fused":
        head = "recompute"           # D only at masked positions, as few as none: no lower bound
    product_bytes = 2 if resolve_precision(cfg.precision, device) is not None else 4
    need = training_step_bytes(cfg, K, world, head, product_bytes)
    require_fits(f"one training step of batch {cfg.batch_size} (L = {cfg.data.block_length}, "
                 f"K = {vocab_size}, model {cfg.model_name})", need, device_memory(device),
                 "lower --batch-size or --block-length, or raise --grad-accum")


def bootstrap_bytes(resamples: int, rows: int) -> int:
    """A vectorised bootstrap of ``rows`` values (or ratio pairs): indices and drawn values."""
    return resamples * max(1, rows) * (8 + 16)


def check_bootstrap(resamples: int, rows: int, what: str = "the bootstrap") -> None:
    """Refuse ``resamples`` bootstrap replicates of ``rows`` values that cannot fit in memory."""
    require_fits(f"{what} with {resamples:,} resamples of {rows:,} values",
                 bootstrap_bytes(resamples, rows), host_memory(),
                 "lower --bootstrap (1000 gives 95% intervals to about +-1%)")


def pool_bytes(sequences: int, block_length: int) -> int:
    """A pool of ``sequences`` rows of length L: int64 ids, bool mask and one working copy."""
    return sequences * block_length * (8 + 1) * 2


def check_pool(sequences: int, block_length: int, corpus: str) -> None:
    """Refuse a data pool that cannot fit in host memory."""
    require_fits(f"{sequences:,} sequences of length {block_length} from {corpus}",
                 pool_bytes(sequences, block_length), host_memory(),
                 "lower --corpus-size or --block-length")
