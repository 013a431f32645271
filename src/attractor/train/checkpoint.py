"""Checkpoints, written so that a run killed at any instant resumes from a complete one.

Layout of ``RUN_DIR/checkpoint/``:
    model.safetensors   raw weights
    ema.safetensors     EMA weights (used for evaluation and probing)
    state.pt            optimiser state and step
    meta.json           {"step": ..., "complete": true}

Protocol: everything is written into ``checkpoint.tmp/``; then the old ``checkpoint/`` (if any) is
renamed to ``checkpoint.prev/``, the new one renamed into place, and the old one removed. A
reader takes ``checkpoint/`` and falls back to ``checkpoint.prev/`` (a kill between the renames).
A write that fails (a full disk: torch and safetensors raise RuntimeError or their own errors,
not OSError) removes ``checkpoint.tmp/`` and leaves the previous checkpoint in place.

Reading goes through :mod:`attractor.artifacts`; :func:`load_checked` also checks that every
tensor fits the model and optimiser it is about to be loaded into (names, shapes, dtypes), so a
damaged or foreign checkpoint is a one-line error rather than a traceback or a crash inside a
fused optimiser kernel. This is the only module that reads or writes checkpoints.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from attractor import artifacts
from attractor.errors import UserError
from attractor.io import write_json

_WRITE_ERRORS = (OSError, RuntimeError, SafetensorError)


def _state_dict_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(tmp: Path, step: int, model_state: dict, ema_state: dict,
               optimizer_state: dict) -> None:
    tmp.mkdir(parents=True)
    save_file(_state_dict_tensors(model_state), str(tmp / "model.safetensors"))
    save_file(_state_dict_tensors(ema_state), str(tmp / "ema.safetensors"))
    torch.save({"step": step, "optimizer": optimizer_state}, tmp / "state.pt")
    write_json(tmp / "meta.json", {"step": step, "complete": True})
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(tmp)


def write_error(what: str, err: BaseException) -> str:
    """Why a write failed, in a few words (torch's messages run over several lines)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return (str(err).strip().splitlines() or [type(err).__name__])[-1][:160]


def save_checkpoint(run_dir: Path, step: int, model_state: dict, ema_state: dict,
                    optimizer_state: dict) -> Path:
    """Write a complete checkpoint for ``step`` atomically; returns its directory."""
    run_dir = Path(run_dir)
    tmp, final, prev = (run_dir / n for n in ("checkpoint.tmp", "checkpoint", "checkpoint.prev"))
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_all(tmp, step, model_state, ema_state, optimizer_state)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, _WRITE_ERRORS):
            raise
        raise UserError(f"cannot write the checkpoint of step {step} in {run_dir} "
                        f"({write_error('checkpoint', err)}); the previous checkpoint is kept: "
                        "free some space and continue with --resume") from None
    if final.exists():
        shutil.rmtree(prev, ignore_errors=True)
        os.replace(final, prev)
    os.replace(tmp, final)
    shutil.rmtree(prev, ignore_errors=True)
    _fsync_dir(run_dir)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None.

    ``checkpoint/`` only ever appears complete (renamed into place), so one without its
    meta.json was damaged afterwards: an error, not a reason to start the run again.
    ``checkpoint.prev/`` may be half removed (a kill during its removal) and is then ignored.
    """
    path = Path(run_dir) / "checkpoint"
    if path.is_dir() and not (path / "meta.json").exists():
        raise UserError(f"{path}/meta.json is missing: the checkpoint is damaged")
    for path in (path, Path(run_dir) / "checkpoint.prev"):
        if (path / "meta.json").is_file():
            return path
    return None


def checkpoint_step(run_dir: Path) -> int | None:
    path = find_checkpoint(run_dir)
    return None if path is None else artifacts.checkpoint_meta(path)


def load_weights(path: Path, which: str = "ema") -> dict[str, torch.Tensor]:
    """Weights from a checkpoint directory: ``which`` is "ema" or "model"."""
    return artifacts.checkpoint_weights(path, which)


def load_state(path: Path) -> dict:
    """Optimiser state and step of a checkpoint directory (the step of its meta.json)."""
    return artifacts.checkpoint_state(path, artifacts.checkpoint_meta(path))


def check_weights(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                  file: Path) -> None:
    """One-line error unless ``weights`` has exactly the names, shapes and dtypes of
    ``reference`` (a model's state dict)."""
    missing = sorted(set(reference) - set(weights))
    extra = sorted(set(weights) - set(reference))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has an unknown tensor {extra[0]}"
        raise UserError(f"checkpoint file {file} does not fit the model: it {what}")
    for name, ref in reference.items():
        got = weights[name]
        if got.shape != ref.shape or got.dtype != ref.dtype:
            raise UserError(f"checkpoint file {file} does not fit the model: {name} is "
                            f"{got.dtype} {tuple(got.shape)}, the model's is {ref.dtype} "
                            f"{tuple(ref.shape)}")


def check_optimizer(saved: dict, optimizer: torch.optim.Optimizer, file: Path) -> None:
    """One-line error unless the saved optimiser state has the optimiser's parameter groups
    and, per parameter, state tensors of that parameter's shape and dtype."""
    groups = saved["param_groups"]
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if [len(g["params"]) for g in groups] != sizes:
        raise UserError(f"checkpoint file {file} does not fit the optimiser: its parameter "
                        f"groups hold {[len(g['params']) for g in groups]} tensors, not {sizes}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in groups for i in g["params"]]
    state = saved["state"]
    if sorted(ids) != list(range(len(params))) or not set(state) <= set(ids):
        raise UserError(f"checkpoint file {file} does not fit the optimiser: its parameter "
                        "numbering is damaged")
    for index, param in zip(ids, params):
        entry = state.get(index, {})
        if not isinstance(entry, dict):
            raise UserError(f"checkpoint file {file}: the state of parameter {index} is damaged")
        for key, value in entry.items():
            _check_state_tensor(key, value, param, index, file)


def _check_state_tensor(key, value, param: torch.Tensor, index: int, file: Path) -> None:
    if key == "step":
        ok = isinstance(value, (int, float)) or isinstance(value, torch.Tensor) \
            and value.numel() == 1 and value.is_floating_point()
    else:
        ok = isinstance(value, torch.Tensor) and value.shape == param.shape \
            and value.dtype == param.dtype
    if not ok:
        shown = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else \
            type(value).__name__
        raise UserError(f"checkpoint file {file} does not fit the optimiser: {key} of parameter "
                        f"{index} is {shown}, the parameter is {param.dtype} "
                        f"{tuple(param.shape)}")


@dataclass(frozen=True)
class Restored:
    """A checkpoint checked against the model and optimiser it is loaded into."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict


def load_checked(path: Path, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer) -> Restored:
    """Everything a resumed run needs from the checkpoint ``path``, checked before any of it is
    loaded (see the module docstring)."""
    step = artifacts.checkpoint_meta(path)
    reference = model.state_dict()
    weights = {}
    for which in ("model", "ema"):
        weights[which] = artifacts.checkpoint_weights(path, which)
        check_weights(weights[which], reference, Path(path) / f"{which}.safetensors")
    state = artifacts.checkpoint_state(path, step)
    check_optimizer(state["optimizer"], optimizer, Path(path) / "state.pt")
    return Restored(step, weights["model"], weights["ema"], state["optimizer"])
