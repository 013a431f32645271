"""Plumbing shared by the load sweeps: configs, seeding, output directories, aggregation.

A sweep measures one row of numbers per (alpha, seed), writes them as ``rows.csv``, averages
them over seeds into ``summary.csv`` (columns ``x`` and ``x_sd``) and ends with ``results.json``,
written last so that its presence means the directory is complete.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from attractor.errors import require
from attractor.io import prepare_results_dir, write_json
from attractor.memories.binary.dynamics import RULES
from attractor.memories.binary.measures import flip_grid
from attractor.memories.binary.pseudolikelihood import PseudoLikelihoodMemory


@dataclass(frozen=True)
class TrainingConfig:
    """Pseudo-likelihood training: Hebbian start, plain full-batch descent, small beta, clipping."""

    beta: float = 0.1
    learning_rate: float = 100.0
    n_epochs: int = 400
    clip_norm: float = 20.0

    def build(self) -> PseudoLikelihoodMemory:
        return PseudoLikelihoodMemory(
            beta=self.beta,
            learning_rate=self.learning_rate,
            n_epochs=self.n_epochs,
            clip_norm=self.clip_norm,
        )


@dataclass(frozen=True)
class RetrievalConfig:
    """Zero-temperature retrieval and the basin protocol."""

    rule: str = "sync"
    max_steps: int = 30
    n_trials: int = 100
    flip_step: float = 0.025

    def validate(self, n: int) -> None:
        """One-line errors for a bad rule or budget, and for a flip grid finer than 1/N."""
        require(
            self.rule in RULES, f"dynamics must be one of {', '.join(RULES)}, not {self.rule!r}"
        )
        require(self.flip_step >= 1.0 / n,
                f"--flip-step {self.flip_step} is below one neuron in N = {n} (1/N = {1 / n:g})")
        require(self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}")
        require(self.n_trials >= 1, f"--trials must be >= 1, got {self.n_trials}")
        require(0 < self.flip_step <= 0.5, f"--flip-step must be in (0, 0.5], got {self.flip_step}")

    def grid(self) -> np.ndarray:
        return flip_grid(self.flip_step)


# Largest P * N of a sweep: several float32 arrays of this size are alive while training.
MAX_ENTRIES = 10**8


def validate_load(n: int, alphas: Sequence[float], n_seeds: int, seed: int = 0) -> None:
    """One-line errors for a bad network size, load grid, seed count or first seed."""
    require(n >= 2, f"N must be >= 2 neurons, got N = {n}")
    require(n * n <= MAX_ENTRIES, f"N = {n} gives {n}x{n} couplings, more than the "
            f"{MAX_ENTRIES:.0e} entries these sweeps hold in memory")
    require(len(alphas) >= 1, "give at least one load alpha")
    require(len(set(alphas)) == len(alphas), f"loads are repeated: {list(alphas)}")
    largest = round(max(alphas) * n)
    require(largest * n <= MAX_ENTRIES, f"alpha = {max(alphas)} at N = {n} means {largest:,} "
            f"patterns of {n} neurons, more than the {MAX_ENTRIES:.0e} entries these sweeps hold "
            "in memory; lower alpha or N")
    for alpha in alphas:
        require(math.isfinite(alpha) and alpha > 0, f"alpha = P/N must be > 0, got {alpha}")
        require(
            round(alpha * n) >= 1,
            f"alpha = {alpha} with N = {n} stores no pattern; raise alpha or N",
        )
    require(n_seeds >= 1, f"--seeds must be >= 1, got {n_seeds}")
    require(seed >= 0, f"--seed must be >= 0, got {seed}")


def validate_workers(workers: int) -> None:
    require(workers >= 1, f"--workers must be >= 1, got {workers}")


def _limit_blas() -> contextlib.AbstractContextManager:
    """One BLAS thread (via threadpoolctl, when installed), else no change.

    The matrices here are at most a few thousand by a few hundred: a multithreaded BLAS gains
    little on them, and on a shared machine its spinning threads can slow a sweep several-fold.
    Parallelism comes from worker processes over (alpha, seed) points instead.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def map_points(
    function: Callable, points: Sequence[tuple[float, int]], workers: int, desc: str,
    progress: bool = True,
) -> list:
    """[function(alpha, seed) for each point], in order, with a progress bar on stderr.

    ``function`` must be picklable (a module-level function or a partial of one) when
    ``workers`` > 1, as the points are then spread over that many processes.
    """
    from tqdm import tqdm

    alphas, seeds = [p[0] for p in points], [p[1] for p in points]
    bar = {"total": len(points), "desc": desc, "unit": "point", "leave": False,
           "disable": not progress}
    if workers == 1:
        with _limit_blas():
            return [function(a, s) for a, s in tqdm(zip(alphas, seeds), **bar)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_enter_limit_blas) as pool:
        return list(tqdm(pool.map(function, alphas, seeds), **bar))


def _enter_limit_blas() -> None:
    _limit_blas().__enter__()  # a worker process keeps the limit for its whole life


def load_grid(seed: int, n_seeds: int, alphas: Sequence[float]) -> list[tuple[float, int]]:
    """Every (alpha, seed) point of a sweep, seed by seed."""
    return [(alpha, s) for s in range(seed, seed + n_seeds) for alpha in alphas]


def point_rng(seed: int, alpha: float) -> np.random.Generator:
    """Generator of one (seed, alpha) point; it does not depend on which other alphas are swept."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(round(alpha * 1e6),)))


def start_sweep(
    kind: str, config, out: str | Path, overwrite: bool, workers: int
) -> tuple[Path, float]:
    """Check ``config`` and ``workers``, then prepare ``out`` for results of ``kind``.

    ``out`` gets its config.json first; see :func:`attractor.io.prepare_results_dir` for which
    folders are accepted. Returns the directory and the time.perf_counter() at the start.
    """
    config.validate()
    validate_workers(workers)
    out = prepare_results_dir(out, kind, overwrite, asdict(config))
    return out, time.perf_counter()


def aggregate(rows: Iterable[dict], key: str = "alpha") -> list[dict]:
    """Mean and standard deviation (``_sd``, ddof 1; 0 for one seed) per value of ``key``."""
    groups: dict[float, list[dict]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    summary = []
    for value in sorted(groups):
        group = groups[value]
        out: dict = {key: value, "n_seeds": len(group)}
        for column in group[0]:
            if column in (key, "seed") or not isinstance(group[0][column], (int, float)):
                continue
            values = np.array([row[column] for row in group], dtype=float)
            out[column] = float(values.mean())
            out[f"{column}_sd"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        summary.append(out)
    return summary


def write_results(
    out: Path, kind: str, config, summary: list[dict], figures, started: float, workers: int,
    **extra,
) -> Path:
    """results.json of a finished sweep (``started``: its time.perf_counter() at the start)."""
    results = {
        "kind": kind,
        "config": asdict(config),
        **extra,
        "summary": summary,
        "figures": figures,
        "seconds": time.perf_counter() - started,
        "workers": workers,
        "git": git_revision(),
    }
    return write_json(out / "results.json", results)


def git_revision() -> str | None:
    """The commit of the source tree, when it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None
