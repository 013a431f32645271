"""Checkpoints, written so that a run killed at any instant resumes from a complete one.

Layout of ``RUN_DIR/checkpoint/``:
    model.safetensors   raw weights
    ema.safetensors     EMA weights (used for evaluation and probing)
    state.pt            optimiser state and step
    meta.json           {"step": ..., "complete": true}

Protocol: everything is written into ``checkpoint.tmp/``; then the old ``checkpoint/`` (if any) is
renamed to ``checkpoint.prev/``, the new one renamed into place, and the old one removed. A
reader takes ``checkpoint/`` and falls back to ``checkpoint.prev/`` (a kill between the renames).
This is the only module that reads or writes checkpoints.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attractor.errors import UserError
from attractor.io import read_json, write_json


def _state_dict_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, step: int, model_state: dict, ema_state: dict,
                    optimizer_state: dict) -> Path:
    """Write a complete checkpoint for ``step`` atomically; returns its directory."""
    run_dir = Path(run_dir)
    tmp, final, prev = (run_dir / n for n in ("checkpoint.tmp", "checkpoint", "checkpoint.prev"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_state_dict_tensors(model_state), str(tmp / "model.safetensors"))
    save_file(_state_dict_tensors(ema_state), str(tmp / "ema.safetensors"))
    torch.save({"step": step, "optimizer": optimizer_state}, tmp / "state.pt")
    write_json(tmp / "meta.json", {"step": step, "complete": True})
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(prev, ignore_errors=True)
        os.replace(final, prev)
    os.replace(tmp, final)
    shutil.rmtree(prev, ignore_errors=True)
    _fsync_dir(run_dir)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    for name in ("checkpoint", "checkpoint.prev"):
        path = Path(run_dir) / name
        if (path / "meta.json").is_file():
            return path
    return None


def checkpoint_step(run_dir: Path) -> int | None:
    path = find_checkpoint(run_dir)
    return None if path is None else int(read_json(path / "meta.json")["step"])


def load_weights(path: Path, which: str = "ema") -> dict[str, torch.Tensor]:
    """Weights from a checkpoint directory: ``which`` is "ema" or "model"."""
    file = Path(path) / f"{which}.safetensors"
    try:
        return load_file(str(file))
    except FileNotFoundError as err:
        raise UserError(f"checkpoint file {file} is missing") from err
    except Exception as err:  # safetensors raises its own error types on corrupt files
        raise UserError(f"checkpoint file {file} is corrupt or unreadable ({err})") from err


def load_state(path: Path) -> dict:
    """Optimiser state and step of a checkpoint directory."""
    file = Path(path) / "state.pt"
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise UserError(f"checkpoint file {file} is missing") from err
    except Exception as err:
        raise UserError(f"checkpoint file {file} is corrupt or unreadable ({err})") from err
