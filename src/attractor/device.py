"""Which device and which autocast precision a command runs on, and which process of a
``torchrun`` job it is."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import torch

from attractor.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA where there is one), ``cpu``, ``cuda`` or ``cuda:N``; one-line errors for
    a device this machine does not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but CUDA is not available here")
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise UserError(f"device {name!r} asked for, but this machine has "
                            f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device(name)
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UserError("device 'mps' asked for, but MPS is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast dtype, or None for fp32. ``auto`` picks bf16 where the hardware has it."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):
        return None


def probe_precision(precision: str, device: torch.device) -> str:
    """A probe's forward passes: ``auto`` is bf16 autocast on a CUDA device that has it (large
    models), fp32 elsewhere; ``fp32`` and ``bf16`` as asked."""
    if precision != "auto":
        return precision
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return "bf16" if cuda_bf16 else "fp32"


def join_process_group(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, device of this rank) under ``torchrun`` (which sets WORLD_SIZE, RANK,
    LOCAL_RANK): joins the process group (NCCL on CUDA, gloo on CPU) and takes GPU LOCAL_RANK;
    (0, 1, device) in a plain process."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


_MALLOPT = {"M_TRIM_THRESHOLD": -1, "M_MMAP_MAX": -4}          # glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """On Linux with glibc's malloc, serve every block from the heap and keep freed memory for
    reuse (mallopt M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB) instead of mapping each large block
    afresh and unmapping it when it is freed, so that a CPU training step's large temporaries
    are not page-faulted in again at every step. Process-wide, for the rest of the process;
    left alone under a preloaded allocator (LD_PRELOAD) or with ATTRACTOR_MALLOC=system.
    Returns whether it was applied."""
    if (sys.platform != "linux" or platform.libc_ver()[0] != "glibc"
            or os.environ.get("LD_PRELOAD") or os.environ.get("ATTRACTOR_MALLOC") == "system"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_MALLOPT["M_MMAP_MAX"], 0)) and \
        bool(mallopt(_MALLOPT["M_TRIM_THRESHOLD"], 2**31 - 1))
