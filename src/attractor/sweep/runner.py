"""Run a sweep: train every planned model, run every probe on it, then analyse; resumable.

SWEEP_DIR/
    sweep.json          {"kind": "sweep", "config": SweepConfig}: a restart must match it
    runs/<name>/        one run directory per (model, size, seed), probes in runs/<name>/probes/
    cache/              the tokenised data pool, built once for all runs
    analysis/           written after the runs, from their files (attractor.analysis)
    report.html         rendered from those files by ``attractor report``

A finished run (summary.json at the final step) is never trained again and a probe whose JSON
exists is never recomputed, so a sweep killed at any moment and started again only does what is
missing. Each run can also be dispatched alone (``--only NAME``), e.g. as a Slurm array task.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

import attractor
from attractor.analysis.analyze import analyze_sweep
from attractor.config import differences, to_dict
from attractor.data import Dataset, build_dataset
from attractor.device import resolve_device
from attractor.errors import UserError, require
from attractor.io import make_dir, read_json, write_json
from attractor.probes.output import write_probe
from attractor.probes.registry import PROBES, run_probe
from attractor.sweep.config import SweepConfig, paper_spaced_sizes, sweep_config_from_dict
from attractor.sweep.plan import PlannedRun, plan_runs
from attractor.train import checkpoint as ckpt
from attractor.train.loop import derive_seed


def _saved_config(out: Path) -> SweepConfig | None:
    """The config in ``out/sweep.json``, None if there is none; refuses foreign folders."""
    require(not out.exists() or out.is_dir(), f"{out} exists and is not a directory")
    path = out / "sweep.json"
    if not path.is_file():
        require(not out.exists() or all(p.name == "cache" for p in out.iterdir()),
                f"{out} exists, is not empty and holds no sweep.json; use another --out")
        return None
    saved = read_json(path)
    require(isinstance(saved, dict) and saved.get("kind") == "sweep" and "config" in saved,
            f"{path} is not a sweep file")
    return sweep_config_from_dict(saved["config"])


def load_sweep_config(out: str | Path) -> SweepConfig:
    """The config saved in ``out/sweep.json`` (what ``--resume-config`` runs)."""
    saved = _saved_config(Path(out))
    require(saved is not None, f"{out} is not a sweep directory (no sweep.json)")
    return saved


def prepare_sweep(out: str | Path, cfg: SweepConfig) -> tuple[SweepConfig, Dataset]:
    """Check everything a sweep needs, then write ``out/sweep.json``.

    The device, the corpus, the training sizes (filled in from the pool when left out) and
    every run's config are checked before sweep.json exists, so a mistake never leaves behind
    a sweep that the corrected command would be refused to continue. Returns the resolved
    config and the data pool.
    """
    out = Path(out)
    saved = _saved_config(out)
    resolve_device(cfg.train.device)
    data = build_dataset(cfg.train.data, cache_dir=out / "cache")
    if cfg.sizes is None:
        cfg = replace(cfg, sizes=paper_spaced_sizes(data.num_available))
    require(max(cfg.sizes) <= data.num_available,
            f"the largest training size {max(cfg.sizes)} exceeds the {data.num_available} "
            "training sequences of the corpus")
    plan_runs(cfg)
    if saved is not None:
        diff = differences(cfg, saved)
        if diff:
            raise UserError(f"{out} holds a sweep made with another config "
                            f"({'; '.join(diff[:3])}); use another --out")
    else:
        make_dir(out)
        write_json(out / "sweep.json", {"kind": "sweep", "config": to_dict(cfg),
                                        "attractor_version": attractor.__version__})
    return cfg, data


def run_is_trained(run_dir: Path, steps: int) -> bool:
    return (run_dir / "summary.json").is_file() and ckpt.checkpoint_step(run_dir) == steps


def missing_probes(run_dir: Path) -> list[str]:
    return [n for n in PROBES if not (run_dir / "probes" / f"{n}.json").is_file()]


def _probe_run(out: Path, cfg: SweepConfig, planned: PlannedRun, todo: list[str],
               progress: bool) -> dict:
    """Run the probes ``todo`` on one trained run; what was done, for sweep_status.json."""
    from attractor.run import load_run

    run = load_run(out / "runs" / planned.name, device=cfg.train.device,
                   cache_dir=out / "cache", precision=cfg.probe_precision)
    if not run.finite:                  # diverged: no probe is defined; the report omits it
        tqdm.write(f"sweep: {planned.name} diverged (weights not finite); not probed")
        return {"diverged": True}
    for name in todo:
        gen = torch.Generator().manual_seed(derive_seed(planned.seed, planned.name, name))
        result = run_probe(name, run, cfg.probes[name], gen, progress)
        write_probe(run, name, result, overwrite=True)   # only missing probes reach this point
    return {"probed": todo}


def run_one(out: Path, cfg: SweepConfig, planned: PlannedRun, data: Dataset | None = None,
            progress: bool = True) -> dict:
    """Train (or finish training) one run of the sweep, then run its missing probes."""
    from attractor.train.trainer import train

    run_dir = out / "runs" / planned.name
    status = {"name": planned.name, "trained": False, "probed": []}
    if not run_is_trained(run_dir, planned.train.steps):
        train(planned.train, run_dir, resume=(run_dir / "config.json").is_file(),
              progress=progress, data=data, cache_dir=out / "cache")
        status["trained"] = True
    todo = missing_probes(run_dir)
    if int(os.environ.get("RANK", "0")) != 0 or not todo:    # data parallel: rank 0 probes
        return status
    return {**status, **_probe_run(out, cfg, planned, todo, progress)}


def run_sweep(cfg: SweepConfig, out: str | Path, only: list[str] | None = None,
              progress: bool = True) -> list[dict]:
    """Run every planned run (or those named in ``only``) of the sweep in ``out``, then write
    its analysis from every run finished so far."""
    out = Path(out)
    cfg, data = prepare_sweep(out, cfg)
    planned = plan_runs(cfg)
    if only:
        unknown = [n for n in only if n not in {p.name for p in planned}]
        require(not unknown, f"no run named {', '.join(unknown)} in this sweep; "
                             "see --plan for the names")
        planned = [p for p in planned if p.name in only]
    statuses, start = [], time.perf_counter()
    bar = tqdm(planned, desc="sweep", unit="run", disable=not progress, dynamic_ncols=True)
    for p in bar:
        bar.set_postfix(run=p.name)
        statuses.append(run_one(out, cfg, p, data=data, progress=progress))
    bar.close()
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(out / "sweep_status.json", {"runs": statuses, "wall_s_last_invocation":
                                               time.perf_counter() - start})
        analyze_sweep(out, cfg.analysis, planned=[p.name for p in plan_runs(cfg)])
    return statuses
