"""The runs of a sweep: names, training configs, and the commands that run each one alone."""

from __future__ import annotations

from dataclasses import dataclass

from attractor.config import override
from attractor.sweep.config import SweepConfig
from attractor.train.config import TrainConfig


@dataclass(frozen=True)
class PlannedRun:
    index: int
    name: str               # directory name: [<family>-]<model>-n<size>-s<seed>
    model: str
    num_train: int
    seed: int
    train: TrainConfig
    family: str = "uniform"


def run_name(family: str, model: str, size: int, seed: int) -> str:
    """``<model>-n<size>-s<seed>``, prefixed by the family unless it is the paper's uniform."""
    prefix = "" if family == "uniform" else f"{family}-"
    return f"{prefix}{model}-n{size}-s{seed}"


def plan_runs(cfg: SweepConfig) -> list[PlannedRun]:
    """Every (seed, family, model, size) of the grid, smallest models and sizes first.

    Needs the training sizes (``cfg.sizes`` is filled in from the data pool by
    :func:`attractor.sweep.runner.prepare_sweep` when it was left out).
    """
    assert cfg.sizes is not None, "the sweep's sizes are resolved from the data first"
    runs = []
    for seed in cfg.seeds:
        for family in cfg.families:
            for model in cfg.models:
                for n in cfg.sizes:
                    train = override(cfg.train, {"model_name": model, "num_train": n,
                                                 "seed": seed, "family": family})
                    runs.append(PlannedRun(len(runs), run_name(family, model, n, seed), model, n,
                                           seed, train, family))
    return runs


def plan_json(cfg: SweepConfig, sweep_dir: str) -> list[dict]:
    """The plan as JSON rows: each run can be dispatched as an independent job."""
    return [{"index": r.index, "name": r.name, "family": r.family, "model": r.model,
             "num_train": r.num_train, "seed": r.seed, "run_dir": f"{sweep_dir}/runs/{r.name}",
             "command": f"attractor sweep --out {sweep_dir} --resume-config --only {r.name}"}
            for r in plan_runs(cfg)]

