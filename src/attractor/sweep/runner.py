"""Run a sweep: train every planned model, run every probe on it, then analyse; resumable.

SWEEP_DIR/
    sweep.json          {"kind": "sweep", "config": SweepConfig}: a restart must match it
    runs/<name>/        one run directory per (model, size, seed), probes in runs/<name>/probes/
    cache/              the tokenised data pool, built once for all runs
    analysis/           written after the runs, from their files (attractor.analysis)
    report.html         rendered from those files by ``attractor report``

A finished run (summary.json at the final step) is never trained again, a probe whose JSON
and rows load intact is never recomputed (a damaged one is) and an unfinished probe keeps its
finished items (:mod:`attractor.probes.items`), so a sweep killed at any moment and started
again only does what is missing. Under ``torchrun`` the ranks train a run data-parallel and then
share out its probes' items. Each run can also be dispatched alone (``--only
NAME``), e.g. as a Slurm array task.

Locks (:mod:`attractor.lock`): a whole sweep holds SWEEP_DIR exclusively; sweeps of ``--only``
runs hold it shared, so that array tasks run side by side while a whole sweep is refused. Each
run is trained and probed under its own directory's lock, and the analysis is written under
that of ``analysis/``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

import attractor
from attractor import artifacts, budget
from attractor.analysis.analyze import analyze_sweep
from attractor.config import differences, leaves, to_dict
from attractor.data import Dataset, build_dataset
from attractor.device import join_process_group, resolve_device
from attractor.errors import UserError, require
from attractor.io import make_dir, write_json
from attractor.lock import LOCK_NAME, hold, output_dir
from attractor.probes.items import Store, World
from attractor.probes.output import write_probe
from attractor.probes.registry import PROBES, run_probe
from attractor.sweep.config import SweepConfig, paper_spaced_sizes
from attractor.sweep.plan import PlannedRun, plan_runs
from attractor.train import checkpoint as ckpt
from attractor.train.loop import derive_seed


def _saved_config(out: Path) -> SweepConfig | None:
    """The config in ``out/sweep.json``, None if there is none; refuses foreign folders."""
    require(not out.exists() or out.is_dir(), f"{out} exists and is not a directory")
    if not (out / "sweep.json").exists():
        started = ("cache", LOCK_NAME)      # and the temporary of a sweep.json cut short
        require(not out.exists() or all(p.name in started or p.name.startswith(".sweep.json.")
                                        for p in out.iterdir()),
                f"{out} exists, is not empty and holds no sweep.json; use another --out")
    return artifacts.sweep_file(out)


def load_sweep_config(out: str | Path) -> SweepConfig:
    """The config saved in ``out/sweep.json`` (what ``--resume-config`` runs)."""
    saved = _saved_config(output_dir(out))
    require(saved is not None, f"{out} is not a sweep directory (no sweep.json)")
    return saved


def prepare_sweep(out: str | Path, cfg: SweepConfig) -> tuple[SweepConfig, Dataset]:
    """Check everything a sweep needs, then write ``out/sweep.json``.

    The device, the corpus, the training sizes (filled in from the pool when left out) and
    every run's config are checked before sweep.json exists, so a mistake never leaves behind
    a sweep that the corrected command would be refused to continue. Returns the resolved
    config and the data pool.
    """
    out = output_dir(out)
    saved = _saved_config(out)
    device = resolve_device(cfg.train.device)
    _check_bootstrap(cfg)
    data = build_dataset(cfg.train.data, cache_dir=out / "cache")
    if cfg.sizes is None:
        cfg = replace(cfg, sizes=paper_spaced_sizes(data.num_available))
    require(max(cfg.sizes) <= data.num_available,
            f"the largest training size {max(cfg.sizes)} exceeds the {data.num_available} "
            "training sequences of the corpus")
    _check_training(cfg, data, device)
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


def _check_training(cfg: SweepConfig, data: Dataset, device) -> None:
    """Refuse a training step of the sweep that cannot fit in memory."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    seen = set()
    for run in plan_runs(cfg):
        if run.model not in seen:
            seen.add(run.model)
            budget.check_training(run.train, data.vocab_size, device, world)


def _check_bootstrap(cfg: SweepConfig) -> None:
    """Refuse a bootstrap of a probe or of the analysis that cannot fit in memory."""
    rows = 1
    for name, probe in cfg.probes.items():
        sizes = [leaf.value for leaf in leaves(probe) if leaf.path.split(".")[-1] in
                 ("num_sequences", "num_samples", "num_reference")]
        rows = max([rows, *sizes])
        boot = [leaf.value for leaf in leaves(probe) if leaf.path.endswith("bootstrap")]
        budget.check_bootstrap(max(boot, default=1), max(sizes, default=1), f"probe {name}")
    budget.check_bootstrap(cfg.analysis.bootstrap, rows, "the analysis")


def run_is_trained(run_dir: Path, steps: int) -> bool:
    """Whether a run finished training: an intact summary.json at its final checkpoint."""
    try:
        finished = artifacts.summary(run_dir) is not None
    except UserError:                   # damaged: training writes it again on resume
        finished = False
    return finished and ckpt.checkpoint_step(run_dir) == steps


def _probe_done(run_dir: Path, name: str) -> bool:
    try:
        artifacts.probe_result(run_dir / "probes", name)
        artifacts.probe_rows(run_dir / "probes", name)
    except UserError:                   # missing or damaged: the probe is run again
        return False
    return True


def missing_probes(run_dir: Path) -> list[str]:
    """The probes whose JSON and rows are not both present and intact."""
    return [n for n in PROBES if not _probe_done(run_dir, n)]


def _probe_run(out: Path, cfg: SweepConfig, planned: PlannedRun, todo: list[str],
               progress: bool) -> dict:
    """Run the probes ``todo`` on one trained run, keeping finished items in the run's
    probes/partial/ (a killed sweep resumes inside a probe), sharded over the ranks of a
    ``torchrun`` job; what was done, for sweep_status.json."""
    from attractor.checks import outputs_finite
    from attractor.run import load_run

    rank, world, device = join_process_group(resolve_device(cfg.train.device))
    World(rank, world).barrier()        # rank 0 has written the final checkpoint and summary
    run_dir = out / "runs" / planned.name
    run = load_run(run_dir, device=str(device), cache_dir=out / "cache",
                   precision=cfg.probe_precision)
    # diverged (weights or logits not finite): no probe is defined, and the report omits it
    if not (run.finite and outputs_finite(run)):
        tqdm.write(f"sweep: {planned.name} diverged (weights or outputs not finite); "
                   "not probed")
        return {"diverged": True}
    for name in todo:
        gen = torch.Generator().manual_seed(derive_seed(planned.seed, planned.name, name))
        store = Store(run_dir, name, replace=True)     # settings come from sweep.json
        result = run_probe(name, run, cfg.probes[name], gen, progress, store, World(rank, world))
        if rank == 0:
            write_probe(run, name, result, overwrite=True)   # only missing probes reach here
            store.discard()
    return {"probed": todo}


def run_one(out: Path, cfg: SweepConfig, planned: PlannedRun, data: Dataset | None = None,
            progress: bool = True) -> dict:
    """Train (or finish training) one run of the sweep, then run its missing probes."""
    from attractor.train.trainer import train

    run_dir = out / "runs" / planned.name
    status = {"name": planned.name, "trained": False, "probed": []}
    with hold(run_dir, f"attractor sweep ({planned.name})"):
        if not run_is_trained(run_dir, planned.train.steps):
            train(planned.train, run_dir, resume=(run_dir / "config.json").is_file(),
                  progress=progress, data=data, cache_dir=out / "cache")
            status["trained"] = True
        todo = missing_probes(run_dir)
        if not todo:
            return status
        return {**status, **_probe_run(out, cfg, planned, todo, progress)}


def run_sweep(cfg: SweepConfig, out: str | Path, only: list[str] | None = None,
              progress: bool = True) -> list[dict]:
    """Run every planned run (or those named in ``only``) of the sweep in ``out``, then write
    its analysis from every run finished so far."""
    out = output_dir(out)
    with hold(out, "attractor sweep", shared=bool(only)):
        return _run_sweep(cfg, out, only, progress)


def _run_sweep(cfg: SweepConfig, out: Path, only: list[str] | None, progress: bool
               ) -> list[dict]:
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
        with hold(out / "analysis", "attractor sweep (analysis)", wait_s=120):
            analyze_sweep(out, cfg.analysis, planned=[p.name for p in plan_runs(cfg)])
    return statuses
