"""The runs of a sweep: names, training configs, and the commands that run each one alone."""

from __future__ import annotations

from dataclasses import dataclass

from attractor.sweep.config import SweepConfig
from attractor.train.config import TrainConfig, make_config


@dataclass(frozen=True)
class PlannedRun:
    index: int
    name: str               # directory name inside the sweep: <model>-n<size>
    model: str
    num_train: int
    train: TrainConfig


def plan_runs(cfg: SweepConfig) -> list[PlannedRun]:
    """Every (model, size) of the grid, smallest models and sizes first."""
    optim = {k: v for k, v in (("lr", cfg.lr), ("warmup", cfg.warmup), ("ema", cfg.ema))
             if v is not None}
    runs = []
    for model in cfg.models:
        for n in cfg.sizes:
            train = make_config(model, optim_overrides=optim, data=cfg.data, num_train=n,
                                steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed,
                                loss_on_padding=cfg.loss_on_padding, compile=cfg.compile,
                                precision=cfg.precision, device=cfg.device,
                                eval_every=cfg.steps, checkpoint_every=max(50, cfg.steps // 10),
                                log_every=max(1, min(50, cfg.steps // 20)))
            runs.append(PlannedRun(len(runs), f"{model}-n{n}", model, n, train))
    return runs


def plan_json(cfg: SweepConfig, sweep_dir: str) -> list[dict]:
    """The plan as JSON rows: each run can be dispatched as an independent job."""
    return [{"index": r.index, "name": r.name, "model": r.model, "num_train": r.num_train,
             "run_dir": f"{sweep_dir}/runs/{r.name}",
             "command": f"attractor sweep --out {sweep_dir} --resume-config --only {r.name}"}
            for r in plan_runs(cfg)]
