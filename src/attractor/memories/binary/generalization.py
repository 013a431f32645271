"""Generalization sweep: do unseen examples become attractors as the load alpha grows?

For each alpha and seed: P = round(alpha N) training patterns from a data model (sparse or dense
random features, or the binarised digits), a pseudo-likelihood memory (and optionally the
Hebbian one), then for four sets of targets (train, unseen test, the hidden features, random
+-1 controls): the final overlap reached from start overlaps m0, and the basin radius. At train
and test points the per-site conditional entropy of eq. (9) is recorded too. Writes config.json,
rows.csv, summary.csv, the figures and results.json (kind ``am-generalization``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from attractor.config import check, setting
from attractor.io import write_csv
from attractor.memories.binary.couplings import HebbianMemory
from attractor.memories.binary.data import (
    FeatureData,
    count_sparse_mixtures,
    dense_feature_data,
    distinct_digit_count,
    sparse_feature_data,
    split_digits,
)
from attractor.memories.binary.measures import (
    basin_curve,
    conditional_entropy,
    coupling_stats,
    final_overlaps,
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

KIND = "am-generalization"
DATA = ("sparse", "dense", "digits")
DIGITS_N = 64       # the 8x8 digits


@dataclass(frozen=True)
class GeneralizationConfig:
    """Training patterns from a data model at each load alpha = P/N, and four sets of targets."""

    data: str = setting("sparse", help="sparse | dense random-feature mixtures, or digits (the "
                        "binarised 8x8 digits)")
    n: int | None = setting(None, help=f"neurons N (none: {DEFAULT_N}, or {DIGITS_N} for digits)")
    alphas: tuple[float, ...] = setting((0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0),
                                        help="loads alpha = P/N")
    feature_ratio: float = setting(0.05, help="hidden features per neuron, alpha_D = D/N")
    mixture_size: int = setting(3, help="features L per sparse mixture (odd)")
    n_test: int = setting(300, help="unseen test patterns")
    n_control: int = setting(100, help="random +-1 control targets")
    n_eval: int = setting(300, help="training patterns (a random subset) whose final overlaps "
                          "and basins are measured")
    start_overlaps: tuple[float, ...] = setting((1.0, 0.8, 0.6, 0.4), help="start overlaps m0 "
                                                "of the final-overlap measurement")
    hebb: bool = setting(False, help="also measure the Hebbian memory")
    seed: int = setting(0, help="first seed")
    n_seeds: int = setting(3, help="seeds per load", flag="seeds")
    training: PLConfig = setting(help="pseudo-likelihood training", factory=PLConfig)
    retrieval: RetrievalConfig = setting(help="retrieval and basins", factory=RetrievalConfig)

    def __post_init__(self) -> None:
        check(self.data in DATA, "data", f"is {self.data!r}, not one of {', '.join(DATA)}")
        check(self.data != "digits" or self.n in (None, DIGITS_N), "n", f"is {self.n}, but the "
              f"8x8 digits fix N = {DIGITS_N}; leave it out")
        check_load(self.n_neurons, self)
        for name in ("n_test", "n_control", "n_eval"):
            check(getattr(self, name) >= 1, name, f"must be >= 1; got {getattr(self, name)}")
        for m0 in self.start_overlaps:
            check(0 <= m0 <= 1, "start_overlaps", f"must lie in [0, 1]; got {m0}")
        largest = round(max(self.alphas) * self.n_neurons)
        if self.data == "digits":
            available = distinct_digit_count()
            check(largest + self.n_test <= available, "alphas", f"the digits give {available} "
                  f"distinct images, fewer than {largest} training + {self.n_test} test; lower "
                  "the largest alpha or --n-test")
            return
        check(self.feature_ratio > 0, "feature_ratio", f"must be > 0; got {self.feature_ratio}")
        check(self.n_features >= 1, "feature_ratio",
              f"{self.feature_ratio} gives no feature at N = {self.n_neurons}")
        if self.data == "sparse":
            self._check_mixtures(largest)

    def _check_mixtures(self, largest: int) -> None:
        """Fail before the sweep, not halfway, when the largest load needs too many mixtures."""
        size, d = self.mixture_size, self.n_features
        check(size % 2 == 1 and 1 <= size <= d, "mixture_size",
              f"must be odd and at most D = {d}; got {size}")
        total = count_sparse_mixtures(d, size)
        check(2 * largest + self.n_test <= total, "alphas", f"D = {d}, L = {size} give {total} "
              f"distinct mixtures, too few for {largest} training (and their negations) plus "
              f"{self.n_test} unseen test patterns; raise N or --feature-ratio, or lower the "
              "largest alpha")

    @property
    def n_neurons(self) -> int:
        """N: ``n``, or when it is left out 400 (random data) or 64 (digits)."""
        if self.n is not None:
            return self.n
        return DIGITS_N if self.data == "digits" else DEFAULT_N

    @property
    def n_features(self) -> int:
        """D = round(alpha_D N); 0 for the digits, which have no hidden features."""
        return 0 if self.data == "digits" else round(self.feature_ratio * self.n_neurons)


def make_data(config: GeneralizationConfig, n_train: int, rng: np.random.Generator) -> FeatureData:
    if config.data == "sparse":
        return sparse_feature_data(
            config.n_neurons, n_train, config.n_test, config.n_features, config.mixture_size, rng
        )
    if config.data == "dense":
        return dense_feature_data(config.n_neurons, n_train, config.n_test, config.n_features, rng)
    return split_digits(n_train, config.n_test, rng)


def _targets(config: GeneralizationConfig, data: FeatureData, rng) -> dict[str, np.ndarray]:
    keep = rng.permutation(data.train.shape[0])[: config.n_eval]
    sets = {
        "train": data.train[keep],
        "test": data.test,
        "features": data.features,
        "control": random_states(config.n_control, config.n_neurons, rng),
    }
    return {name: targets for name, targets in sets.items() if targets.shape[0] > 0}


def _measure_model(prefix, couplings, targets, config, rng) -> dict:
    """Final overlaps from each m0 and basin radii for every target set."""
    retrieval = config.retrieval
    row = {}
    for name, points in targets.items():
        for m0 in config.start_overlaps:
            finals = final_overlaps(
                couplings, points, (1.0 - m0) / 2.0, rng, retrieval.rule, retrieval.max_steps
            )
            row[f"{prefix}_{name}_m{m0:g}"] = float(finals.mean())
        curve = basin_curve(
            couplings,
            points,
            rng,
            retrieval.n_trials,
            retrieval.grid(),
            retrieval.rule,
            retrieval.max_steps,
        )
        row[f"{prefix}_{name}_radius"] = curve.radius
    return row


def measure_point(config: GeneralizationConfig, alpha: float, seed: int) -> dict:
    """One (alpha, seed) row."""
    rng = point_rng(seed, alpha)
    data = make_data(config, round(alpha * config.n_neurons), rng)
    targets = _targets(config, data, rng)
    row: dict = {"alpha": alpha, "seed": seed, "P": data.train.shape[0]}
    started = time.perf_counter()
    couplings = PseudoLikelihoodMemory(config.training).fit(data.train).couplings_
    row |= _measure_model("pl", couplings, targets, config, rng)
    for name in ("train", "test"):
        entropy = conditional_entropy(couplings, targets[name], config.training.beta)
        row[f"pl_{name}_entropy"] = float(entropy.mean())
    row["pl_kappa_min"] = float(margins(couplings, data.train).min())
    row |= {f"pl_{k}": v for k, v in coupling_stats(couplings).items()}
    row["pl_seconds"] = time.perf_counter() - started
    if config.hebb:
        hebbian = HebbianMemory().fit(data.train).couplings_
        row |= _measure_model("hebb", hebbian, targets, config, rng)
    return row


def run_generalization(
    config: GeneralizationConfig, out: str | Path, overwrite: bool = False, workers: int = 1,
    progress: bool = True,
) -> Path:
    """Run the sweep into ``out`` (over ``workers`` processes): tables, figures, results.json.

    Returns the path of results.json (the report is rendered from the directory by
    :func:`attractor.report.registry.render_directory`). The numbers do not depend on ``workers``.
    """
    out, started = start_sweep(KIND, config, out, overwrite, workers)
    grid = load_grid(config.seed, config.n_seeds, config.alphas)
    rows = map_points(partial(measure_point, config), grid, workers, "am generalization",
                      progress)
    summary = aggregate(rows)
    write_csv(out / "rows.csv", rows)
    write_csv(out / "summary.csv", summary)
    from attractor.memories.binary.figures import generalization_figures

    models = ("pl", "hebb") if config.hebb else ("pl",)
    figures = generalization_figures(summary, config, models, out)
    return write_results(out, KIND, config, summary, figures, started, workers,
                         n=config.n_neurons, n_features=config.n_features)
