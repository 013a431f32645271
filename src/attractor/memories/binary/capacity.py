"""Capacity sweep: basins of random patterns against the load alpha = P/N, PL vs classical rules.

For each alpha and seed: P = round(alpha N) random +-1 patterns, one memory per rule, and for
each memory the basin curve of the stored patterns, the margins of eq. (7) against Gardner's
kappa_max(alpha), the norm and asymmetry of J. Writes into OUT: config.json, rows.csv (one row
per alpha and seed), summary.csv (means and standard deviations over seeds), curves.json (mean
basin curves), the figures and results.json (kind ``am-capacity``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from attractor.config import check, setting
from attractor.io import write_csv, write_json
from attractor.memories.binary.couplings import HebbianMemory, PseudoInverseMemory
from attractor.memories.binary.measures import (
    basin_curve,
    coupling_stats,
    gardner_kappa_max,
    margins,
)
from attractor.memories.binary.patterns import random_states
from attractor.memories.binary.pseudolikelihood import PLConfig, PseudoLikelihoodMemory
from attractor.memories.binary.sweep import (
    DEFAULT_N,
    RetrievalConfig,
    aggregate,
    check_load,
    load_grid,
    map_points,
    point_rng,
    start_sweep,
    write_results,
)

KIND = "am-capacity"
MODELS = ("pl", "hebb", "pinv")


@dataclass(frozen=True)
class CapacityConfig:
    """Random +-1 patterns at each load alpha = P/N, stored by each of ``models``."""

    n: int = setting(DEFAULT_N, help="neurons N")
    alphas: tuple[float, ...] = setting((0.05, 0.1, 0.12, 0.14, 0.2, 0.3, 0.5, 0.75, 1.0),
                                        help="loads alpha = P/N")
    models: tuple[str, ...] = setting(MODELS, help="coupling rules: pl (pseudo-likelihood), "
                                      "hebb (Hebbian), pinv (pseudo-inverse)")
    seed: int = setting(0, help="first seed")
    n_seeds: int = setting(3, help="seeds per load", flag="seeds")
    training: PLConfig = setting(help="pseudo-likelihood training", factory=PLConfig)
    retrieval: RetrievalConfig = setting(help="retrieval and basins", factory=RetrievalConfig)

    def __post_init__(self) -> None:
        check_load(self.n, self)
        check(len(self.models) >= 1, "models", "needs at least one model")
        check(len(set(self.models)) == len(self.models), "models",
              f"are repeated: {list(self.models)}")
        for model in self.models:
            check(model in MODELS, "models",
                  f"has unknown model {model!r}; choose from {', '.join(MODELS)}")


def _build(model: str, training: PLConfig):
    if model == "pl":
        return PseudoLikelihoodMemory(training)
    return HebbianMemory() if model == "hebb" else PseudoInverseMemory()


def measure_point(config: CapacityConfig, alpha: float, seed: int) -> tuple[dict, dict]:
    """One (alpha, seed): a row of scalars and the basin curves, keyed by model."""
    rng = point_rng(seed, alpha)
    patterns = random_states(round(alpha * config.n), config.n, rng)
    row: dict = {"alpha": alpha, "seed": seed, "P": patterns.shape[0]}
    row["kappa_gardner"] = gardner_kappa_max(alpha)
    curves = {}
    for model in config.models:
        started = time.perf_counter()
        couplings = _build(model, config.training).fit(patterns).couplings_
        retrieval = config.retrieval
        curve = basin_curve(
            couplings,
            patterns,
            rng,
            retrieval.n_trials,
            retrieval.grid(),
            retrieval.rule,
            retrieval.max_steps,
        )
        kappa = margins(couplings, patterns)
        stats = coupling_stats(couplings)
        row |= {
            f"{model}_radius": curve.radius,
            f"{model}_stable": float(curve.success[0]),
            f"{model}_kappa_min": float(kappa.min()),
            f"{model}_kappa_mean": float(kappa.mean()),
            f"{model}_norm": stats["norm"],
            f"{model}_asymmetry": stats["asymmetry"],
            f"{model}_cycles": curve.cycles,
            f"{model}_unsettled": curve.unsettled,
            f"{model}_seconds": time.perf_counter() - started,
        }
        curves[model] = curve
    return row, curves


def _mean_curves(config: CapacityConfig, points: list[tuple[float, dict]]) -> dict:
    """Basin curves averaged over seeds: {model: {alpha: {fractions, success, mean_overlap}}}."""
    out: dict = {}
    for model in config.models:
        per_alpha: dict = {}
        for alpha in config.alphas:
            curves = [c[model] for a, c in points if a == alpha]
            per_alpha[str(alpha)] = {
                "fractions": curves[0].fractions.tolist(),
                "success": np.mean([c.success for c in curves], axis=0).tolist(),
                "mean_overlap": np.mean([c.mean_overlap for c in curves], axis=0).tolist(),
            }
        out[model] = per_alpha
    return out


def run_capacity(
    config: CapacityConfig, out: str | Path, overwrite: bool = False, workers: int = 1,
    progress: bool = True,
) -> Path:
    """Run the sweep into ``out`` (over ``workers`` processes): tables, figures, results.json.

    Returns the path of results.json (the report is rendered from the directory by
    :func:`attractor.report.registry.render_directory`). The numbers do not depend on ``workers``.
    """
    out, started = start_sweep(KIND, config, out, overwrite, workers)
    grid = load_grid(config.seed, config.n_seeds, config.alphas)
    measured = map_points(partial(measure_point, config), grid, workers, "am capacity",
                          progress)
    rows = [row for row, _ in measured]
    points = [(row["alpha"], curves) for row, curves in measured]
    summary = aggregate(rows)
    write_csv(out / "rows.csv", rows)
    write_csv(out / "summary.csv", summary)
    write_json(out / "curves.json", _mean_curves(config, points))
    from attractor.memories.binary.figures import capacity_figures

    figures = capacity_figures(summary, config.models, out)
    return write_results(out, KIND, config, summary, figures, started, workers)
