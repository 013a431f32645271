"""Generalization sweep: do unseen examples become attractors as the load alpha grows?

For each alpha and seed: P = round(alpha N) training patterns from a data model (sparse or dense
random features, or the binarised digits), a pseudo-likelihood memory (and optionally the
Hebbian one), then for four sets of targets (train, unseen test, the hidden features, random
+-1 controls): the final overlap reached from start overlaps m0, and the basin radius. At train
and test points the per-site conditional entropy of eq. (9) is recorded too. Writes config.json,
rows.csv, summary.csv, the figures, results.json (kind ``am-generalization``) and report.html.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from attractor.errors import require
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
from attractor.memories.binary.sweep import (
    RetrievalConfig,
    TrainingConfig,
    aggregate,
    load_grid,
    map_points,
    point_rng,
    start_sweep,
    validate_load,
    write_results,
)

KIND = "am-generalization"
DATA = ("sparse", "dense", "digits")
TARGETS = ("train", "test", "features", "control")
DIGITS_N = 64


@dataclass(frozen=True)
class GeneralizationConfig:
    data: str = "sparse"
    n: int = 400
    alphas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0)
    feature_ratio: float = 0.05  # alpha_D = D / N
    mixture_size: int = 3  # L, sparse data only
    n_test: int = 300
    n_control: int = 100
    n_eval: int = 300  # training patterns used for the final overlaps (a random subset)
    start_overlaps: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4)
    hebb: bool = False
    seed: int = 0
    n_seeds: int = 3
    training: TrainingConfig = field(default_factory=TrainingConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    def validate(self) -> None:
        require(self.data in DATA, f"unknown data {self.data!r}; choose from {', '.join(DATA)}")
        require(self.data != "digits" or self.n == DIGITS_N, f"the 8x8 digits have N = {DIGITS_N}")
        validate_load(self.n, self.alphas, self.n_seeds, self.seed)
        self.retrieval.validate(self.n)
        self.training.build().check_params()
        if self.data != "digits":
            require(0 < self.feature_ratio, f"alpha_D = D/N must be > 0, got {self.feature_ratio}")
            require(
                self.n_features >= 1,
                f"alpha_D = {self.feature_ratio} gives no feature at N = {self.n}",
            )
        require(
            self.n_test >= 1 and self.n_control >= 1 and self.n_eval >= 1,
            "the test, control and evaluation counts must be >= 1",
        )
        if self.data == "sparse":
            self._check_mixtures()
        if self.data == "digits":
            available = distinct_digit_count()
            largest = round(max(self.alphas) * self.n)
            require(
                largest + self.n_test <= available,
                f"the digits give {available} distinct images, fewer than {largest} training + "
                f"{self.n_test} test; lower the largest alpha or --n-test",
            )
        for m0 in self.start_overlaps:
            require(0 <= m0 <= 1, f"start overlaps m0 must be in [0, 1], got {m0}")

    def _check_mixtures(self) -> None:
        """Fail before the sweep, not halfway, when the largest load needs too many mixtures."""
        size = self.mixture_size
        require(
            size % 2 == 1 and 1 <= size <= self.n_features,
            f"the mixture size L must be odd and at most D = {self.n_features}, got {size}",
        )
        total = count_sparse_mixtures(self.n_features, size)
        largest = round(max(self.alphas) * self.n)
        require(
            2 * largest + self.n_test <= total,
            f"D = {self.n_features}, L = {size} give {total} distinct mixtures, too few for "
            f"{largest} training (and their negations) plus {self.n_test} unseen test "
            "patterns; raise N or --feature-ratio, or lower the largest alpha",
        )

    @property
    def n_features(self) -> int:
        return round(self.feature_ratio * self.n)


def make_data(config: GeneralizationConfig, n_train: int, rng: np.random.Generator) -> FeatureData:
    if config.data == "sparse":
        return sparse_feature_data(
            config.n, n_train, config.n_test, config.n_features, config.mixture_size, rng
        )
    if config.data == "dense":
        return dense_feature_data(config.n, n_train, config.n_test, config.n_features, rng)
    return split_digits(n_train, config.n_test, rng)


def _targets(config: GeneralizationConfig, data: FeatureData, rng) -> dict[str, np.ndarray]:
    keep = rng.permutation(data.train.shape[0])[: config.n_eval]
    sets = {
        "train": data.train[keep],
        "test": data.test,
        "features": data.features,
        "control": random_states(config.n_control, config.n, rng),
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
    data = make_data(config, round(alpha * config.n), rng)
    targets = _targets(config, data, rng)
    row: dict = {"alpha": alpha, "seed": seed, "P": data.train.shape[0]}
    started = time.perf_counter()
    couplings = config.training.build().fit(data.train).couplings_
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
    """Run the sweep into ``out`` (over ``workers`` processes) and render its report.

    Returns the path of results.json. The numbers do not depend on ``workers``.
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
    n_features = config.n_features if config.data != "digits" else 0
    path = write_results(
        out, KIND, config, summary, figures, started, workers, n_features=n_features
    )
    from attractor.memories.binary.report import render_generalization_report

    render_generalization_report(out)
    return path
