"""Which device and which autocast precision a command runs on, and which process of a
``torchrun`` job it is."""

from __future__ import annotations

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
