"""What makes a run directory trustworthy: made whole or not at all, and resumed on its own data.

A run starts by writing tokenizer.json, membership.json and, last, config.json. If that start
fails (a full disk) the files it wrote are removed again; if it is killed halfway, what is left
(no config.json, nothing but those files) is a *half-made* run that the same command replaces.
Once config.json exists the run is continued with ``--resume`` only, and then the data rebuilt
from its config must be the data it was trained on: the fingerprint and the ids recorded in
membership.json must match the rebuilt pool and the config's training set.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from attractor import artifacts
from attractor.errors import UserError
from attractor.io import write_json, write_text
from attractor.lock import LOCK_NAME

# What a start writes before config.json, with the temporary files of its atomic writes.
FRESH_FILES = ("tokenizer.json", "membership.json", "config.json")


def _leftover(name: str) -> bool:
    """A file a start that was cut short may leave: one of its files or their temporaries."""
    return name == LOCK_NAME or name in FRESH_FILES or any(
        name.startswith(f".{f}.") and name.endswith(".tmp") for f in FRESH_FILES)


def is_half_made(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds only what a start cut short leaves (no config.json)."""
    if not run_dir.is_dir() or (run_dir / "config.json").exists():
        return False
    return all(_leftover(p.name) for p in run_dir.iterdir())


def holds_results(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds anything a new run must not overwrite."""
    return run_dir.is_dir() and not is_half_made(run_dir) and any(
        p.name != LOCK_NAME for p in run_dir.iterdir())


def write_fresh(run_dir: Path, tokenizer, membership: dict, config: dict) -> None:
    """Write a new run's tokenizer.json, membership.json and config.json (last: its presence
    means the run exists); on failure remove what was written, so nothing half-made is left."""
    for p in run_dir.iterdir():         # temporaries of a start that was killed
        if p.name.startswith(".") and p.name.endswith(".tmp") and _leftover(p.name):
            p.unlink(missing_ok=True)
    written = []
    try:
        for name, write in (("tokenizer.json", lambda p: write_text(p, tokenizer.to_str(pretty=True))),
                            ("membership.json", lambda p: write_json(p, membership)),
                            ("config.json", lambda p: write_json(p, config))):
            written.append(run_dir / name)
            write(run_dir / name)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def check_same_data(run_dir: Path, data, train_ids: torch.Tensor | None = None
                    ) -> artifacts.Membership:
    """The run's membership.json, refused unless the rebuilt ``data`` pool is the one it was
    trained on and its ids are those the config selects (``train_ids``, when given)."""
    saved = artifacts.membership(run_dir)
    if saved.fingerprint != data.fingerprint:
        raise UserError(f"the data rebuilt from {run_dir}/config.json differs from the data the "
                        f"run was trained on (fingerprint {data.fingerprint[:12]}, "
                        f"membership.json has {saved.fingerprint[:12]}): the corpus or the "
                        "tokenizer changed; restore them or start a new run")
    path = Path(run_dir) / "membership.json"
    artifacts.need(saved.num_sequences == len(data.sequences), path,
                   f"num_sequences is {saved.num_sequences}, the pool has "
                   f"{len(data.sequences)}")
    artifacts.need(saved.test_ids == data.test_ids.tolist(), path,
                   "test_ids are not the test split of the data")
    if train_ids is not None:
        artifacts.need(saved.train_ids == train_ids.tolist(), path,
                       "train_ids are not the training set that config.json selects")
    return saved


def intact_summary(run_dir: Path) -> dict | None:
    """The run's summary.json, or None when it has none or it is damaged (training then
    writes it again from metrics.jsonl)."""
    try:
        return artifacts.summary(run_dir)
    except UserError:
        return None
