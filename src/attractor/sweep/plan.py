"""The runs of a sweep: names, training configs, and the commands that run each one alone."""

from __future__ import annotations

from dataclasses import dataclass

from attractor.config import override
from attractor.sweep.config import SweepConfig
from attractor.train.config import TrainConfig


@dataclass(frozen=True)
class PlannedRun:
    index: int
    name: str               # directory name inside the sweep: <model>-n<size>-s<seed>
    model: str
    num_train: int
    seed: int
    train: TrainConfig


def plan_runs(cfg: SweepConfig) -> list[PlannedRun]:
    """Every (seed, model, size) of the grid, smallest models and sizes first.

    Needs the training sizes (``cfg.sizes`` is filled in from the data pool by
    :func:`attractor.sweep.runner.prepare_sweep` when it was left out).
    """
    assert cfg.sizes is not None, "the sweep's sizes are resolved from the data first"
    runs = []
    for seed in cfg.seeds:
        for model in cfg.models:
            for n in cfg.sizes:
                train = override(cfg.train, {"model_name": model, "num_train": n, "seed": seed})
                runs.append(PlannedRun(len(runs), f"{model}-n{n}-s{seed}", model, n, seed, train))
    return runs


def plan_json(cfg: SweepConfig, sweep_dir: str) -> list[dict]:
    """The plan as JSON rows: each run can be dispatched as an independent job."""
    return [{"index": r.index, "name": r.name, "model": r.model, "num_train": r.num_train,
             "seed": r.seed, "run_dir": f"{sweep_dir}/runs/{r.name}",
             "command": f"attractor sweep --out {sweep_dir} --resume-config --only {r.name}"}
            for r in plan_runs(cfg)]

