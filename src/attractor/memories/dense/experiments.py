"""The two dense experiments, ``circle`` and ``digits``: run the sweeps and write OUT.

Each writes into its output directory ``config.json`` first, then the PNG figures, CSV tables
and ``results.json`` (kind ``dense-circle`` or ``dense-digits``: the config, every summary row,
the per-K account of the exact minima ``exact_by_k`` (:func:`merges.summarise_by_k`), the
thresholds in absolute and relative form and the wall time). ``report.html`` is rendered from
the directory by :func:`attractor.report.registry.render_directory`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from attractor.config import check, setting, to_dict
from attractor.io import prepare_results_dir, write_csv, write_json
from attractor.memories.dense import data, figures, merges, sweeps
from attractor.memories.dense.score_model import ScoreModelConfig

# Bounds that keep every tensor of the experiments finite and in memory: the data have unit
# scale (circle radius 1, pixels in [-1, 1]); the thresholds need the (K, K) distances.
SIGMA_RANGE = (1e-4, 1e4)
MAX_K = 10_000
DIGITS_TRAIN = 1797 - 300
KS_FIELDS = ("exact_ks", "learned_ks", "entropy_ks")


@dataclass(frozen=True)
class CircleConfig:
    """Exact energy on the unit circle at ``sigma``; learned scores for ``learned_ks``."""

    exact_ks: tuple[int, ...] = setting((2, 4, 8, 16, 32, 64, 128, 512),
                                        help="training sizes K of the exact-energy sweep")
    sigma: float = setting(0.15, help="noise level of the exact energy")
    seeds: int = setting(10, help="random training sets per K of the exact-energy sweep")
    starts: int = setting(3000, help="starts of the minimum search per training set")
    learned_ks: tuple[int, ...] = setting((2, 4, 8, 16, 32, 64, 256, 1024), flag="ks",
                                          help="training sizes K of the learned scores")
    generation: sweeps.GenerationConfig = setting(help="learned scores",
                                                  factory=sweeps.GenerationConfig)
    entropy_ks: tuple[int, ...] = setting((8, 64, 512),
                                          help="training sizes K of the entropy check")
    entropy_width: float = setting(0.02, help="width s of the blurred training points of the "
                                   "entropy check")
    entropy_sigmas: tuple[float, ...] = setting((0.01, 0.03, 0.1, 0.3, 1.0),
                                                help="noise levels of the entropy check")
    entropy_points: int = setting(40, help="observations x_t per K and noise level of the "
                                  "entropy check")
    seed: int = setting(0, help="seed of the training sets and of all sampling")

    def __post_init__(self) -> None:
        _check(self)
        check(self.seeds >= 1, "seeds", f"must be >= 1; got {self.seeds}")


def _digits_generation() -> sweeps.GenerationConfig:
    """64-d images need a wider model, a wider noise range and coarser basin levels."""
    return sweeps.GenerationConfig(
        model=ScoreModelConfig(hidden=256, sigma_min=0.02, sigma_max=10.0), samples=500,
        basin_points=12, basin_trials=8,
        basin_levels=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0))


@dataclass(frozen=True)
class DigitsConfig:
    """The same three measurements on 8x8 digits (64-d, pixels in [-1, 1])."""

    exact_ks: tuple[int, ...] = setting((10, 30, 100, 300, 1000, 1497),
                                        help="training sizes K of the exact-energy sweep")
    sigma: float = setting(1.5, help="noise level of the exact energy")
    starts: int = setting(400, help="starts of the minimum search per training set")
    learned_ks: tuple[int, ...] = setting((10, 30, 100, 300, 1000, 1497), flag="ks",
                                          help="training sizes K of the learned scores")
    generation: sweeps.GenerationConfig = setting(help="learned scores",
                                                  factory=_digits_generation)
    entropy_ks: tuple[int, ...] = setting((100, 1000),
                                          help="training sizes K of the entropy check")
    entropy_width: float = setting(0.1, help="width s of the blurred training images of the "
                                   "entropy check")
    entropy_sigmas: tuple[float, ...] = setting((0.1, 0.5, 1.5, 4.0),
                                                help="noise levels of the entropy check")
    entropy_points: int = setting(20, help="observations x_t per K and noise level of the "
                                  "entropy check")
    seed: int = setting(0, help="seed of the training/held-out split and of all sampling")

    def __post_init__(self) -> None:
        _check(self)
        for name in KS_FIELDS:
            ks = getattr(self, name)
            check(max(ks) <= DIGITS_TRAIN, name, f"{list(ks)} goes beyond the {DIGITS_TRAIN} "
                  "training images (1797 less 300 held out)")


def _check(cfg: CircleConfig | DigitsConfig) -> None:
    """ConfigErrors naming the field, for values no experiment can run with."""
    check(cfg.sigma > 0, "sigma", f"must be > 0; got {cfg.sigma}")
    check(SIGMA_RANGE[0] <= cfg.sigma <= SIGMA_RANGE[1], "sigma",
          f"must lie in [{SIGMA_RANGE[0]:g}, {SIGMA_RANGE[1]:g}]; got {cfg.sigma}")
    for name in KS_FIELDS:
        ks = getattr(cfg, name)
        check(len(ks) >= 1 and min(ks) >= 2, name,
              f"needs training sizes K of at least 2; got {list(ks)}")
        check(len(set(ks)) == len(ks), name, f"has repeated training sizes: {list(ks)}")
        check(max(ks) <= MAX_K, name, f"{list(ks)}: training sizes above {MAX_K:,} do not fit "
              "these dense experiments in memory")
    check(cfg.starts >= 1, "starts", f"must be >= 1; got {cfg.starts}")
    check(cfg.entropy_points >= 1, "entropy_points", f"must be >= 1; got {cfg.entropy_points}")
    check(cfg.entropy_width > 0, "entropy_width", f"must be > 0; got {cfg.entropy_width}")
    check(len(cfg.entropy_sigmas) >= 1 and min(cfg.entropy_sigmas) > 0, "entropy_sigmas",
          f"must be noise levels > 0; got {list(cfg.entropy_sigmas)}")
    check(cfg.seed >= 0, "seed", f"must be >= 0; got {cfg.seed}")


def quick(cfg: CircleConfig | DigitsConfig) -> CircleConfig | DigitsConfig:
    """A seconds-long version for smoke tests: few K, a short training, few samples."""
    gen = replace(cfg.generation, model=replace(cfg.generation.model, iterations=300),
                  samples=200, steps=40, basin_points=4, basin_trials=4)
    ks = cfg.learned_ks[:1] + cfg.learned_ks[-1:]
    common = {"exact_ks": cfg.exact_ks[:2] + cfg.exact_ks[-1:], "starts": 200,
              "learned_ks": ks, "generation": gen, "entropy_ks": cfg.entropy_ks[:1],
              "entropy_points": 4}
    if isinstance(cfg, CircleConfig):
        common["seeds"] = 2
    return replace(cfg, **common)


def _exact_rows(patterns_for, ks, sigma, starts_for, thresholds, seeds,
                progress: bool) -> tuple[list, list]:
    summary, minima = [], []
    for seed in range(seeds):
        for k in _progress(ks, f"exact minima, seed {seed}", progress):
            row, per = sweeps.exact_minima(patterns_for(k, seed), sigma, starts_for(k, seed),
                                           thresholds)
            summary.append({"seed": seed, **row})
            minima.extend({"seed": seed, "K": k, **m} for m in per if seed == 0)
    return summary, minima


def _learned_rows(patterns_for, ks, gen, chance, generator, progress: bool) -> tuple[list, dict]:
    rows, arrays = [], {}
    for k in _progress(ks, "learned scores", progress):
        row, arr = sweeps.learned_generation(patterns_for(k), gen, chance, generator)
        rows.append(row)
        arrays[k] = arr
    return rows, arrays


def _entropy(patterns_for, cfg, generator) -> tuple[list, list]:
    summaries, rows = [], []
    for k in cfg.entropy_ks:
        s, r = sweeps.entropy_check(patterns_for(k), cfg.entropy_width,
                                    list(cfg.entropy_sigmas), cfg.entropy_points, generator)
        summaries.append(s)
        rows.extend(r)
    return summaries, rows


def run_circle(cfg: CircleConfig, out: str | Path, overwrite: bool = False,
               progress: bool = True) -> Path:
    """The circle experiment into ``out``; returns the path of ``results.json``."""
    out, t0 = prepare_results_dir(out, "dense-circle", overwrite, to_dict(cfg)), time.time()
    gen = torch.Generator().manual_seed(cfg.seed)

    def points(k: int, seed: int = cfg.seed) -> torch.Tensor:
        # Same seed for every K: the first K angles are shared, so training sets are nested.
        return data.circle_points(k, torch.Generator().manual_seed(seed))

    def starts(k: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(10_000 + seed)
        return 1.5 * torch.randn(cfg.starts, 2, generator=g, dtype=torch.float64)

    th = cfg.generation.thresholds
    exact, minima = _exact_rows(points, cfg.exact_ks, cfg.sigma, starts, th, cfg.seeds, progress)
    chance = data.circle_points(cfg.generation.samples, torch.Generator().manual_seed(99_999))
    learned, arrays = _learned_rows(points, cfg.learned_ks, cfg.generation, chance, gen, progress)
    entropy, entropy_rows = _entropy(points, cfg, gen)
    figures.circle_figures(out, points, cfg, minima, arrays)
    figures.common_figures(out, exact, minima, learned, entropy_rows)
    return _finish(out, "dense-circle", cfg, t0, dict(exact=exact, minima=minima, learned=learned,
                                                   entropy=entropy, entropy_rows=entropy_rows))


def run_digits(cfg: DigitsConfig, out: str | Path, overwrite: bool = False,
               progress: bool = True) -> Path:
    """The 8x8 digits experiment into ``out``; returns the path of ``results.json``."""
    out, t0 = prepare_results_dir(out, "dense-digits", overwrite, to_dict(cfg)), time.time()
    gen = torch.Generator().manual_seed(cfg.seed)
    largest = max(cfg.exact_ks + cfg.learned_ks + cfg.entropy_ks)
    train, held_out = data.split_digits(largest, torch.Generator().manual_seed(cfg.seed))

    def points(k: int, seed: int = 0) -> torch.Tensor:
        return train[:k]

    def starts(k: int, seed: int) -> torch.Tensor:
        # Half noisy training images, half noisy held-out images: both kinds of query.
        g = torch.Generator().manual_seed(10_000 + seed)
        n = cfg.starts // 2
        base = torch.cat([train[:k][torch.randint(k, (n,), generator=g)], held_out[:n]])
        return base + cfg.sigma * torch.randn(base.shape, generator=g, dtype=torch.float64)

    th = cfg.generation.thresholds
    exact, minima = _exact_rows(points, cfg.exact_ks, cfg.sigma, starts, th, 1, progress)
    learned, arrays = _learned_rows(points, cfg.learned_ks, cfg.generation, held_out, gen,
                                    progress)
    entropy, entropy_rows = _entropy(points, cfg, gen)
    figures.digits_figures(out, arrays)
    figures.common_figures(out, exact, minima, learned, entropy_rows)
    return _finish(out, "dense-digits", cfg, t0, dict(exact=exact, minima=minima, learned=learned,
                                                   entropy=entropy, entropy_rows=entropy_rows))


def _finish(out: Path, kind: str, cfg, t0: float, tables: dict[str, list]) -> Path:
    """The tables (``exact``, ``minima``, ``learned``, ``entropy``, ``entropy_rows``), then
    results.json last: its presence means the directory is complete."""
    exact_by_k = merges.summarise_by_k(tables["exact"])
    write_csv(out / "exact.csv", tables["exact"])
    write_csv(out / "exact_by_k.csv", exact_by_k)
    write_csv(out / "learned.csv", tables["learned"])
    write_csv(out / "entropy.csv", tables["entropy_rows"])
    write_json(out / "minima.json", tables["minima"])
    return write_json(out / "results.json", {
        "kind": kind, "config": to_dict(cfg), "thresholds": to_dict(cfg.generation.thresholds),
        "exact": tables["exact"], "exact_by_k": exact_by_k, "merge_gap_sigma": merges.MERGE_GAP,
        "learned": tables["learned"], "entropy": tables["entropy"],
        "wall_seconds": time.time() - t0, "threads": torch.get_num_threads(),
    })


def _progress(items, desc: str, enabled: bool = True):
    from tqdm import tqdm

    return tqdm(list(items), desc=desc, leave=False, file=sys.stderr, mininterval=1.0,
                disable=not enabled)


__all__ = ["CircleConfig", "DigitsConfig", "quick", "run_circle", "run_digits"]
