"""The three measurements behind every dense experiment, one function each, one row per K.

1. :func:`exact_minima`: minima of the exact empirical DenseAM at a fixed sigma, their kind and
   Hessian eigenvalues.
2. :func:`learned_generation`: train a score model on K points, sample, classify the samples,
   and measure basins (critical noise) of training points and spurious attractors.
3. :func:`entropy_check`: conditional entropy vs -1/2 log det Hess on the Gaussian-mixture
   posterior (Appendix C).

Nothing here writes files or plots; the experiments do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from attractor.config import check, setting
from attractor.memories.dense import classify as cls
from attractor.memories.dense import energy as am
from attractor.memories.dense import entropy as ent
from attractor.memories.dense import merges
from attractor.memories.dense.data import nearest_neighbour_distances
from attractor.memories.dense.samplers import (
    SAMPLERS,
    euler_maruyama,
    noise_grid,
    probability_flow,
    sample,
)
from attractor.memories.dense.score_model import ScoreModel, ScoreModelConfig


def exact_minima(patterns: torch.Tensor, sigma: float, starts: torch.Tensor,
                 thresholds: cls.Thresholds) -> tuple[dict, list[dict]]:
    """Summary row and per-minimum rows of the exact energy at ``sigma`` for ``patterns``.

    The row also accounts for the off-data minima by two-well merges (:func:`merges.explain`).
    """
    minima = am.find_minima(patterns, sigma, starts)
    delta = thresholds.absolute(patterns)
    dist = nearest_neighbour_distances(minima.points, patterns)
    mem = dist <= delta["delta_m"]
    lowest = minima.eigenvalues[:, 0]
    per = [{"distance_to_train": float(dist[i]), "memorised": bool(mem[i]),
            "starts": int(minima.counts[i]), "energy": float(minima.energies[i]),
            "radius": float(minima.points[i].norm()),
            "point": minima.points[i].tolist(), "eigenvalues": minima.eigenvalues[i].tolist()}
           for i in range(minima.points.shape[0])]
    summary = {
        "K": patterns.shape[0], "minima": len(per), "memorised_minima": int(mem.sum()),
        "off_data_minima": int((~mem).sum()),
        "start_fraction_memorised": float(minima.counts[mem].sum()) / starts.shape[0],
        "lowest_eig_memorised": _mean(lowest[mem]), "lowest_eig_off_data": _mean(lowest[~mem]),
        "lowest_eig_min": float(lowest.min()), "mean_radius": float(minima.points.norm(dim=1).mean()),
        "saddles": int((lowest < 0).sum()), "converged": minima.converged_fraction,
        "iterations": minima.iterations, **delta,
        **merges.explain(minima.points, mem, lowest, patterns, sigma, delta["delta_m"]),
    }
    return summary, per


def _mean(x: torch.Tensor) -> float:
    return float(x.mean()) if x.numel() else float("nan")


@dataclass(frozen=True)
class GenerationConfig:
    """Learned-score part of a sweep: model, sampler, classification and basin probe."""

    model: ScoreModelConfig = setting(help="the score model", factory=ScoreModelConfig)
    samples: int = setting(1000, help="generated samples per model")
    steps: int = setting(200, help="sampler steps from sigma_max down to sigma_min")
    method: str = setting("sde", help="sampler: sde (Euler-Maruyama) | ode (probability flow)",
                          flag="sampler")
    thresholds: cls.Thresholds = setting(help="memorised / spurious thresholds",
                                         factory=cls.Thresholds)
    basin_points: int = setting(24, help="training points and spurious centres whose basin is "
                                "measured, each")
    basin_trials: int = setting(10, help="noisings per point and noise level of the basin probe")
    basin_levels: tuple[float, ...] = setting(
        (0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45, 0.7, 1.0),
        help="noise levels sigma_c of the basin probe (those outside the schedule are skipped)")

    def __post_init__(self) -> None:
        check(self.samples >= 1, "samples", f"must be >= 1; got {self.samples}")
        check(self.steps >= 2, "steps", f"must be >= 2; got {self.steps}")
        check(self.method in SAMPLERS, "method",
              f"is {self.method!r}, not one of {', '.join(SAMPLERS)}")
        check(self.basin_points >= 1, "basin_points", f"must be >= 1; got {self.basin_points}")
        check(self.basin_trials >= 1, "basin_trials", f"must be >= 1; got {self.basin_trials}")
        check(len(self.basin_levels) >= 1 and min(self.basin_levels) > 0, "basin_levels",
              f"must be noise levels > 0; got {list(self.basin_levels)}")


def learned_generation(patterns: torch.Tensor, cfg: GenerationConfig, chance: torch.Tensor,
                       generator: torch.Generator, progress: bool = False) -> tuple[dict, dict]:
    """Train, sample and classify; returns (summary row, arrays for figures).

    ``chance`` (N, d) are fresh draws from the data distribution, classified the same way, so
    the row also says how many samples would be called spurious by coincidence alone.
    """
    model = ScoreModel(cfg.model).fit(patterns, generator, progress=progress)
    sigmas = noise_grid(cfg.model.sigma_max, cfg.model.sigma_min, cfg.steps)
    x = sample(model.score, cfg.samples, patterns.shape[1], sigmas, generator, cfg.method)
    labels = cls.classify(x, patterns, cfg.thresholds)
    delta = cfg.thresholds.absolute(patterns)
    centres = cls.spurious_centres(x, labels, delta["delta_s"])
    basins = _basins(model, patterns, centres, cfg, delta["delta_m"], generator)
    chance_frac = cls.fractions(cls.classify(chance, patterns, cfg.thresholds))
    row = {"K": patterns.shape[0], **cls.fractions(labels),
           "chance_spurious": chance_frac["spurious"], "spurious_centres": centres.shape[0],
           "final_loss": model.final_loss_, **delta, **_basin_summary(basins)}
    return row, {"samples": x, "labels": labels, "centres": centres, "basins": basins}


def _restorer(model: ScoreModel, cfg: GenerationConfig, generator: torch.Generator):
    """restore(x, sigma_c): the configured sampler from sigma_c down to sigma_min."""
    def restore(x: torch.Tensor, sigma_c: float) -> torch.Tensor:
        steps = max(int(cfg.steps * _log_fraction(sigma_c, cfg.model)), 2)
        grid = noise_grid(sigma_c, cfg.model.sigma_min, steps)
        if cfg.method == "ode":
            return probability_flow(model.score, x, grid)
        return euler_maruyama(model.score, x, grid, generator)
    return restore


def _log_fraction(sigma_c: float, m: ScoreModelConfig) -> float:
    return math.log(sigma_c / m.sigma_min) / math.log(m.sigma_max / m.sigma_min)


def _basins(model: ScoreModel, patterns: torch.Tensor, centres: torch.Tensor,
            cfg: GenerationConfig, radius: float, generator: torch.Generator) -> dict:
    """Critical noise of up to ``basin_points`` training points and spurious centres."""
    grid = torch.tensor([s for s in cfg.basin_levels if cfg.model.sigma_min < s
                         <= cfg.model.sigma_max], dtype=torch.float64)
    restore = _restorer(model, cfg, generator)
    out = {}
    for name, pts in (("train", patterns), ("spurious", centres)):
        pts = pts[: cfg.basin_points]
        out[name] = (cls.critical_noise(restore, pts, grid, radius, generator, cfg.basin_trials)
                     if pts.shape[0] else torch.zeros(0, dtype=torch.float64))
    return out


def _basin_summary(basins: dict) -> dict:
    return {"basin_train_median": _median(basins["train"]),
            "basin_spurious_median": _median(basins["spurious"])}


def _median(x: torch.Tensor) -> float:
    return float(x.median()) if x.numel() else float("nan")


def entropy_check(patterns: torch.Tensor, width: float, sigmas: list[float], points: int,
                  generator: torch.Generator, mc_samples: int = 4000) -> tuple[dict, list[dict]]:
    """Agreement overall and per sigma, and the per-point rows (Appendix C)."""
    rows = ent.entropy_rows(patterns, width, sigmas, points, generator, mc_samples)
    for r in rows:
        r["K"] = patterns.shape[0]
    per_sigma = []
    for s in sigmas:
        sub = [r for r in rows if r["sigma"] == s]
        per_sigma.append({"K": patterns.shape[0], "sigma": s, **ent.agreement(sub),
                          "unimodal_fraction": sum(r["effective_components"] < 1.5 for r in sub)
                          / len(sub)})
    return {"K": patterns.shape[0], "width": width, **ent.agreement(rows),
            "per_sigma": per_sigma}, rows
