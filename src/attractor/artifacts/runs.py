"""Loaders of a training run's files: config, membership, metrics, summary and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attractor.artifacts.fields import (
    int_field,
    is_int,
    jsonl_rows,
    need,
    number_field,
    read_json,
    shown,
    table,
)
from attractor.errors import UserError


def run_config(run_dir: str | Path) -> tuple[Any, dict]:
    """RUN/config.json: the training config and the file's other entries."""
    from attractor.config import ConfigError, from_dict
    from attractor.train.config import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        cut = (Path(run_dir) / "membership.json").exists() or \
            (Path(run_dir) / "tokenizer.json").exists()
        raise UserError(f"{run_dir} is not a run directory (no config.json)" + (
            "; its start was cut short: run the same command without --resume to start it "
            "again" if cut else ""))
    saved = read_json(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise UserError(f"{run_dir} is not a run directory ({path} holds no training config)")
    try:
        cfg = from_dict(TrainConfig, saved["train"])
    except ConfigError as err:
        raise UserError(f"{path} holds a damaged training config ({err})") from None
    need(is_int(saved.get("vocab_size")) and saved["vocab_size"] >= 2, path,
         "it records no vocabulary size")
    int_field(saved, "num_train", path, lo=1, optional=True)
    int_field(saved, "pad_id", path, optional=True)
    return cfg, saved


@dataclass(frozen=True)
class Membership:
    """RUN/membership.json: which pool sequences the run trained on and held out."""

    fingerprint: str
    num_sequences: int
    train_ids: list[int]
    test_ids: list[int]


def _ids(d: dict, key: str, path: Path, size: int) -> list[int]:
    ids = d.get(key)
    need(key in d, path, f"field {key!r} is missing")
    need(isinstance(ids, list), path, f"{key} is {shown(ids)}, not a list of ids")
    for i, v in enumerate(ids):
        need(is_int(v), path, f"{key}[{i}] is {shown(v)}, not a whole number")
        need(0 <= v < size, path, f"{key}[{i}] is {v}, outside 0..{size - 1}")
    need(len(set(ids)) == len(ids), path, f"{key} repeats an id")
    return ids


def membership(run_dir: str | Path, pool_size: int | None = None) -> Membership:
    """RUN/membership.json, its ids in range of the pool (``pool_size`` sequences when given,
    else the recorded count), unique, and disjoint between train and test."""
    path = Path(run_dir) / "membership.json"
    d = table(read_json(path), path)
    fp = d.get("fingerprint")
    need(isinstance(fp, str) and fp != "", path, f"fingerprint is {shown(fp)}, not a hash")
    n = int_field(d, "num_sequences", path, lo=1)
    need(pool_size is None or n == pool_size, path,
         f"num_sequences is {n}, but the rebuilt data pool has {pool_size}")
    train, test = _ids(d, "train_ids", path, n), _ids(d, "test_ids", path, n)
    need(len(train) >= 1, path, "train_ids is empty")
    both = set(train) & set(test)
    need(not both, path, f"id {min(both) if both else 0} is both a train and a test id")
    return Membership(fp, n, train, test)


def metrics(path: str | Path) -> list[dict]:
    """RUN/metrics.jsonl: one row per line, each {"step": k, ...} with numbers or null (a last
    line cut short by a kill is dropped)."""
    path = Path(path)
    rows = []
    for number, row in jsonl_rows(path, torn_last=True) if path.is_file() else ():
        _metrics_row(row, path, number)
        rows.append(row)
    return rows


def _metrics_row(row: Any, path: Path, number: int) -> None:
    where = f"line {number}"
    need(isinstance(row, dict), path, f"{where} holds {shown(row)}, not a metrics row")
    need(is_int(row.get("step")) and row["step"] >= 0, path,
         f"{where}: step is {shown(row.get('step'))}, not a step number")
    for key, value in row.items():
        if key not in ("step", "split"):
            need(value is None or is_int(value) or isinstance(value, float), path,
                 f"{where}: {key} is {shown(value)}, not a number")
    need(isinstance(row.get("split", ""), str), path, f"{where}: split is not text")


def summary(run_dir: str | Path) -> dict | None:
    """RUN/summary.json (written last by training), or None when the run has none yet."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    d = table(read_json(path), path)
    int_field(d, "steps", path, lo=1)
    for key in ("final_train_loss", "train_nelbo", "test_nelbo", "test_ppl_bound"):
        number_field(d, key, path)
    return d


# --------------------------------------------------------------------------- checkpoints

def checkpoint_meta(ckpt_dir: str | Path) -> int:
    """checkpoint/meta.json: the step of a complete checkpoint."""
    path = Path(ckpt_dir) / "meta.json"
    d = table(read_json(path), path)
    step = int_field(d, "step", path, lo=1)
    need(d.get("complete") is True, path, f"complete is {shown(d.get('complete'))}, not true")
    return step


def checkpoint_state(ckpt_dir: str | Path, step: int) -> dict:
    """checkpoint/state.pt: {"step": the step of meta.json, "optimizer": a state dict}."""
    import torch

    path = Path(ckpt_dir) / "state.pt"
    d = table(_binary(path, lambda: torch.load(path, map_location="cpu", weights_only=True)),
               path)
    need(d.get("step") == step and is_int(d.get("step")), path,
         f"step is {shown(d.get('step'))}, not the step {step} of meta.json")
    opt = table(d.get("optimizer"), path, "optimizer")
    need(isinstance(opt.get("state"), dict), path, "optimizer.state is not a table")
    groups = opt.get("param_groups")
    ok = isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"),
                                                                            list) for g in groups)
    need(ok, path, "optimizer.param_groups is not a list of parameter groups")
    return d


def checkpoint_weights(ckpt_dir: str | Path, which: str) -> dict:
    """checkpoint/{which}.safetensors: name -> tensor (shapes are checked against the model
    by :func:`attractor.train.checkpoint.check_weights`)."""
    from safetensors.torch import load_file

    file = Path(ckpt_dir) / f"{which}.safetensors"
    return _binary(file, lambda: load_file(str(file)))


def _binary(path: Path, load) -> Any:
    """``load()`` of a checkpoint file, its failures as one line."""
    try:
        return load()
    except FileNotFoundError:
        raise UserError(f"checkpoint file {path} is missing") from None
    except Exception as err:  # noqa: BLE001 - safetensors, pickle, zip and torch errors
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"checkpoint file {path} is corrupt or unreadable ({first})") from None
