"""Small training runs shared by the end-to-end tests (each trained once per test session)."""

from __future__ import annotations

from pathlib import Path

from attractor.data import DataConfig
from attractor.train.config import make_config
from attractor.train.trainer import train

SMALL_DATA = DataConfig(corpus="synthetic", corpus_size=3000, test_size=64, block_length=32)


def small_config(num_train: int, steps: int, **kw):
    fields = dict(batch_size=32, eval_every=steps, log_every=10, checkpoint_every=steps,
                  eval_sequences=64, precision="fp32")
    fields.update(kw)
    optim = fields.pop("optim_overrides", {"lr": 3e-3, "warmup": 20})
    return make_config("nano", data=SMALL_DATA, num_train=num_train, steps=steps,
                       optim_overrides=optim, **fields)


def train_small(run_dir: Path, num_train: int, steps: int, **kw) -> dict:
    return train(small_config(num_train, steps, **kw), run_dir, progress=False)
