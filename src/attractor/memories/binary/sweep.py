"""Plumbing shared by the load sweeps: retrieval config, seeding, output directories, aggregation.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attractor.config import check, setting, to_dict
from attractor.errors import require
from attractor.io import prepare_results_dir, write_json
from attractor.memories.binary.dynamics import RULES
from attractor.memories.binary.measures import flip_grid

DEFAULT_N = 400    # neurons of the random-pattern sweeps


@dataclass(frozen=True)
class RetrievalConfig:
    """Zero-temperature retrieval and the basin protocol (flip a fraction, run, compare)."""

    rule: str = setting("sync", help="zero-temperature retrieval: sync (all sites at once) | "
                        "async (one site at a time)", flag="dynamics")
    max_steps: int = setting(30, help="steps (sync) or sweeps (async) before a run counts as "
                             "unsettled")
    n_trials: int = setting(100, help="basin trials per flipped fraction", flag="trials")
    flip_step: float = setting(0.025, help="step of the flipped-fraction grid 0 .. 0.5; at "
                               "least 1/N")

    def __post_init__(self) -> None:
        check(self.rule in RULES, "rule", f"is {self.rule!r}, not one of {', '.join(RULES)}")
        check(self.max_steps >= 1, "max_steps", f"must be >= 1; got {self.max_steps}")
        check(self.n_trials >= 1, "n_trials", f"must be >= 1; got {self.n_trials}")
        check(0 < self.flip_step <= 0.5, "flip_step", f"must be in (0, 0.5]; got {self.flip_step}")

    def grid(self) -> np.ndarray:
        """The flipped fractions 0, flip_step, ... 0.5: (G,) float64."""
        return flip_grid(self.flip_step)


# Largest P * N of a sweep: several float32 arrays of this size are alive while training.
MAX_ENTRIES = 10**8


def check_load(n: int, config) -> None:
    """ConfigErrors naming the field for a bad network size ``n`` or a bad load grid, seed count,
    first seed or flip grid of ``config`` (a capacity or generalization config)."""
    check(n >= 2, "n", f"must be >= 2 neurons; got {n}")
    check(n * n <= MAX_ENTRIES, "n", f"is too large: N = {n} gives {n}x{n} couplings, more than "
          f"the {MAX_ENTRIES:.0e} entries these sweeps hold in memory")
    alphas = config.alphas
    check(len(alphas) >= 1, "alphas", "needs at least one load alpha")
    check(len(set(alphas)) == len(alphas), "alphas", f"are repeated: {list(alphas)}")
    for alpha in alphas:
        check(math.isfinite(alpha) and alpha > 0, "alphas",
              f"must be loads alpha = P/N > 0; got {alpha}")
        check(round(alpha * n) >= 1, "alphas", f"alpha = {alpha} with N = {n} stores no "
              "pattern; raise alpha or N")
    largest = round(max(alphas) * n)
    check(largest * n <= MAX_ENTRIES, "alphas", f"alpha = {max(alphas)} at N = {n} means "
          f"{largest:,} patterns of {n} neurons, more than the {MAX_ENTRIES:.0e} entries these "
          "sweeps hold in memory; lower alpha or N")
    check(config.n_seeds >= 1, "n_seeds", f"must be >= 1; got {config.n_seeds}")
    check(config.seed >= 0, "seed", f"must be >= 0; got {config.seed}")
    step = config.retrieval.flip_step
    check(step >= 1.0 / n, "retrieval.flip_step",
          f"{step} is below one neuron in N = {n} (1/N = {1 / n:g})")


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
    """Check ``workers``, then prepare ``out`` for results of ``kind`` (the config checked itself).

    ``out`` gets its config.json first; see :func:`attractor.io.prepare_results_dir` for which
    folders are accepted. Returns the directory and the time.perf_counter() at the start.
    """
    require(workers >= 1, f"--workers must be >= 1; got {workers}")
    out = prepare_results_dir(out, kind, overwrite, to_dict(config))
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
        "config": to_dict(config),
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
