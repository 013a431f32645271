"""Run a sweep: train every planned model, then run every probe on it; resumable at any point.

SWEEP_DIR/
    sweep.json          {"kind": "sweep", "config": SweepConfig}: a restart must match it
    runs/<name>/        one run directory per (model, size), probes in runs/<name>/probes/
    cache/              the tokenised data pool, built once for all runs
    analysis/           written by attractor.analysis from the files above
    report.html

A finished run (summary.json at the final step) is never trained again and a probe whose JSON
exists is never recomputed, so a sweep killed at any moment and started again only does what is
missing. Each run can also be dispatched alone (``--only NAME``), e.g. as a Slurm array task.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from attractor.errors import UserError, require
from attractor.io import make_dir, read_json, write_json
from attractor.sweep.config import ProbeSettings, SweepConfig, sweep_config_from_dict
from attractor.sweep.plan import PlannedRun, plan_runs
from attractor.train import checkpoint as ckpt
from attractor.train.config import config_differences
from attractor.train.loop import derive_seed

PROBES = ("recovery_stochastic", "recovery_deterministic", "entropy", "generate")


def check_sweep_dir(out: Path, cfg: SweepConfig) -> None:
    """Refuse ``out`` unless it is new, empty (but for the data cache) or a sweep of ``cfg``."""
    require(not out.exists() or out.is_dir(), f"{out} exists and is not a directory")
    path = out / "sweep.json"
    if path.is_file():
        saved = read_json(path)
        require(isinstance(saved, dict) and saved.get("kind") == "sweep" and "config" in saved,
                f"{path} is not a sweep file")
        diff = config_differences(cfg.to_dict(), sweep_config_from_dict(saved["config"]).to_dict())
        if diff:
            raise UserError(f"{out} holds a sweep made with another config "
                            f"({'; '.join(diff[:3])}); use another --out")
        return
    require(not out.exists() or all(p.name == "cache" for p in out.iterdir()),
            f"{out} exists, is not empty and holds no sweep.json; use another --out")


def prepare_sweep(out: str | Path, cfg: SweepConfig):
    """Check everything a sweep needs, then write ``out/sweep.json``; returns the data pool.

    The config, the device, the corpus and the largest training size are all checked before
    sweep.json exists, so a mistake never leaves behind a sweep that a corrected command would
    be refused to continue.
    """
    from attractor.data import build_dataset
    from attractor.train.trainer import resolve_device

    cfg.validate()
    plan_runs(cfg)                      # builds and checks the training config of every run
    out = Path(out)
    check_sweep_dir(out, cfg)
    resolve_device(cfg.device)
    data = build_dataset(cfg.data, cache_dir=out / "cache")
    available = data.num_available
    require(max(cfg.sizes) <= available,
            f"the largest training size {max(cfg.sizes)} exceeds the {available} training "
            f"sequences of the corpus")
    if not (out / "sweep.json").is_file():
        make_dir(out)
        write_json(out / "sweep.json", {"kind": "sweep", "config": cfg.to_dict(),
                                        "attractor_version": __import__("attractor").__version__})
    return data


def load_sweep_config(out: str | Path) -> SweepConfig:
    path = Path(out) / "sweep.json"
    require(path.is_file(), f"{out} is not a sweep directory (no sweep.json)")
    saved = read_json(path)
    require(isinstance(saved, dict) and "config" in saved, f"{path} is not a sweep file")
    return sweep_config_from_dict(saved["config"])


def run_is_trained(run_dir: Path, steps: int) -> bool:
    return (run_dir / "summary.json").is_file() and ckpt.checkpoint_step(run_dir) == steps


def probe_configs(p: ProbeSettings) -> dict:
    from attractor.probes.entropy import EntropyConfig
    from attractor.probes.generate import GenerateConfig
    from attractor.probes.recovery import deterministic_config, stochastic_config
    from attractor.sampler import SamplerConfig

    shared = dict(num_sequences=p.num_sequences, bootstrap=p.bootstrap)
    return {
        "recovery_stochastic": stochastic_config(times=p.times, steps=p.reverse_steps, **shared),
        "recovery_deterministic": deterministic_config(fractions=p.fractions,
                                                       t=p.deterministic_t,
                                                       steps=p.reverse_steps, **shared),
        "entropy": EntropyConfig(num_sequences=p.entropy_sequences, bootstrap=p.bootstrap),
        "generate": GenerateConfig(num_samples=p.num_samples,
                                   sampler=SamplerConfig(steps=p.generate_steps),
                                   num_reference=p.entropy_sequences, bootstrap=p.bootstrap),
    }


def missing_probes(run_dir: Path) -> list[str]:
    return [n for n in PROBES if not (run_dir / "probes" / f"{n}.json").is_file()]


def run_one(out: Path, cfg: SweepConfig, planned: PlannedRun, data=None,
            progress: bool = True) -> dict:
    """Train (or finish training) one run of the sweep, then run its missing probes."""
    from attractor.probes.entropy import run_entropy
    from attractor.probes.generate import run_generate
    from attractor.probes.output import write_probe
    from attractor.probes.recovery import run_recovery
    from attractor.run import load_run
    from attractor.train.trainer import train

    run_dir = out / "runs" / planned.name
    status = {"name": planned.name, "trained": False, "probed": []}
    if not run_is_trained(run_dir, planned.train.steps):
        resume = (run_dir / "config.json").is_file()
        train(planned.train, run_dir, resume=resume, progress=progress, data=data,
              cache_dir=out / "cache")
        status["trained"] = True
    if int(os.environ.get("RANK", "0")) != 0:     # data parallel: rank 0 alone probes
        return status
    todo = missing_probes(run_dir)
    if not todo:
        return status
    run = load_run(run_dir, device=cfg.device, cache_dir=out / "cache",
                   precision=cfg.probes.precision)
    if not run.finite:                  # diverged: no probe is defined; the report omits it
        tqdm.write(f"sweep: {planned.name} diverged (weights not finite); not probed")
        status["diverged"] = True
        return status
    runners = {"recovery_stochastic": run_recovery, "recovery_deterministic": run_recovery,
               "entropy": run_entropy, "generate": run_generate}
    configs = probe_configs(cfg.probes)
    for name in todo:
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, planned.name, name))
        result = runners[name](run, configs[name], gen, progress=progress)
        write_probe(run, result, overwrite=True)    # only missing probes reach this point
        status["probed"].append(name)
    return status


def run_sweep(cfg: SweepConfig, out: str | Path, only: list[str] | None = None,
              progress: bool = True) -> list[dict]:
    """Run every planned run (or those named in ``only``) of the sweep in ``out``."""
    cfg.validate()
    out = Path(out)
    planned = plan_runs(cfg)
    if only:
        names = {p.name for p in planned}
        unknown = [n for n in only if n not in names]
        require(not unknown, f"no run named {', '.join(unknown)} in this sweep; "
                             f"see --plan for the names")
        planned = [p for p in planned if p.name in only]
    data = prepare_sweep(out, cfg)
    statuses = []
    start = time.perf_counter()
    bar = tqdm(planned, desc="sweep", unit="run", disable=not progress, dynamic_ncols=True)
    for p in bar:
        bar.set_postfix(run=p.name)
        statuses.append(run_one(out, cfg, p, data=data, progress=progress))
    bar.close()
    write_json(out / "sweep_status.json", {"runs": statuses,
                                           "wall_s_last_invocation": time.perf_counter() - start})
    return statuses

