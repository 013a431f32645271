"""The configuration of a sweep: a training template, run over model configs x sizes x seeds.

A planned run is the template with its model config, training size and seed replaced
(:mod:`attractor.sweep.plan`). Every run of a sweep draws from the same data pool and split;
training sets are prefixes of one fixed permutation, so smaller ones are subsets of larger ones.
Every registered probe runs on every model, with the settings in ``probes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from attractor.analysis.analyze import AnalysisSettings
from attractor.config import ConfigError, check, from_dict, setting
from attractor.errors import UserError
from attractor.model.configs import MODEL_CONFIGS
from attractor.probes.registry import config_class, default_configs
from attractor.train.config import TrainConfig
from attractor.train.objectives import FAMILIES

PROBE_PRECISIONS = ("fp32", "bf16")
_DEFAULT_TRAIN = TrainConfig()


@dataclass(frozen=True)
class SweepConfig:
    """A grid of model configs x training sizes x seeds; each run is trained, then probed."""

    train: TrainConfig = setting(help="the training settings every run shares",
                                 factory=TrainConfig)
    models: tuple[str, ...] = setting(("nano",), help="model configs, comma-separated: "
                                      + ", ".join(MODEL_CONFIGS))
    families: tuple[str, ...] = setting(("uniform",), help="model families, comma-separated: "
                                        + ", ".join(FAMILIES) + " (same data, sizes, seeds)")
    sizes: tuple[int, ...] | None = setting(None, help="training sizes, increasing (none: "
                                            "log-spaced, then linear up to the whole pool)")
    seeds: tuple[int, ...] = setting((0,), help="training seeds (initialisation, data order, "
                                     "noise); the data split is the same for all")
    probes: dict = setting(help="the settings of each probe", factory=default_configs,
                           entries=config_class)
    probe_precision: str = setting("fp32", help="probe forward passes: fp32 | bf16 (autocast)")
    analysis: AnalysisSettings = setting(help="transition estimates", factory=AnalysisSettings)

    def __post_init__(self) -> None:
        check(len(self.models) >= 1, "models", "needs at least one model config")
        check(len(set(self.models)) == len(self.models), "models", "repeats a model config")
        unknown = [m for m in self.models if m not in MODEL_CONFIGS]
        check(not unknown, "models", f"has unknown model config(s) {', '.join(unknown)}; "
              f"choose from {', '.join(MODEL_CONFIGS)}")
        if self.sizes is not None:
            check(len(self.sizes) >= 1 and min(self.sizes) >= 1, "sizes",
                  f"must be positive training sizes, got {list(self.sizes)}")
            check(list(self.sizes) == sorted(set(self.sizes)), "sizes",
                  f"must be strictly increasing, got {list(self.sizes)}")
        check(len(self.families) >= 1 and len(set(self.families)) == len(self.families),
              "families", "must name each family once")
        unknown = [f for f in self.families if f not in FAMILIES]
        check(not unknown, "families", f"has unknown famil{'ies' if len(unknown) > 1 else 'y'} "
              f"{', '.join(unknown)}; choose from {', '.join(FAMILIES)}")
        check(len(self.seeds) >= 1 and min(self.seeds) >= 0, "seeds", "must be seeds >= 0")
        check(len(set(self.seeds)) == len(self.seeds), "seeds", "repeats a seed")
        check(self.probe_precision in PROBE_PRECISIONS, "probe_precision",
              f"is {self.probe_precision!r}, not one of {', '.join(PROBE_PRECISIONS)}")
        t = self.train
        for path, value, default, by in (("seed", t.seed, 0, "seeds"),
                                         ("family", t.family, "uniform", "families"),
                                         ("fraction", t.fraction, None, "sizes"),
                                         ("num_train", t.num_train, None, "sizes"),
                                         ("model_name", t.model_name, _DEFAULT_TRAIN.model_name,
                                          "models"),
                                         ("model", t.model, _DEFAULT_TRAIN.model, "models")):
            check(value == default, f"train.{path}", f"is set for each run by {by}; leave it "
                  "out of the sweep's settings")


def sweep_config_from_dict(d: dict) -> SweepConfig:
    """A SweepConfig saved as JSON; anything else is a one-line UserError."""
    try:
        return from_dict(SweepConfig, d)
    except ConfigError as err:
        raise UserError(f"sweep.json is not a valid sweep config of this version ({err})"
                        ) from None


def paper_spaced_sizes(pool: int, smallest: int = 32, n_log: int = 5, n_linear: int = 3) -> tuple:
    """Training sizes spaced as the paper's fractions: log-spaced through the memorisation
    regime (``smallest`` to pool / 10), then linear up to the whole pool."""
    if pool <= smallest:
        raise UserError(f"the training pool ({pool}) must exceed the smallest size {smallest}")
    top_log = max(smallest + 1, pool // 10)
    logs = [round(math.exp(math.log(smallest) + i * (math.log(top_log) - math.log(smallest))
                           / (n_log - 1))) for i in range(n_log)] if n_log > 1 else [smallest]
    linear = [round(top_log + (pool - top_log) * (i + 1) / n_linear) for i in range(n_linear)]
    return tuple(sorted(set(logs + linear)))
