"""Small training runs shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

from attractor.config import override
from attractor.train.config import TrainConfig
from attractor.train.trainer import train


def small_config(num_train: int, steps: int, corpus: int = 3000, test_size: int = 64,
                 **changes) -> TrainConfig:
    """A nano model on a small synthetic corpus; ``changes`` override any training setting."""
    base = {"data": {"corpus_size": corpus, "test_size": test_size, "block_length": 32},
            "num_train": num_train, "steps": steps, "batch_size": 32, "eval_every": steps,
            "log_every": 10, "checkpoint_every": steps, "eval_sequences": 64,
            "precision": "fp32", "device": "cpu", "optim": {"lr": 3e-3, "warmup": 20}}
    return override(override(TrainConfig(), base), changes)


def train_small(run_dir: Path, num_train: int, steps: int, **kw) -> dict:
    return train(small_config(num_train, steps, **kw), run_dir, progress=False)
