"""The configuration of a sweep: a grid of training sizes x model configs, one seed.

Every run of a sweep trains from the same initialisation seed and the same data pool; the only
differences are the number of training sequences (a prefix of one fixed permutation, so smaller
training sets are subsets of larger ones) and the model config.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from attractor.data import DataConfig
from attractor.errors import UserError, require
from attractor.model.configs import MODEL_CONFIGS


@dataclass(frozen=True)
class ProbeSettings:
    """What is measured on every model of the sweep (see attractor.probes)."""

    num_sequences: int = 64                     # train and test sequences per probe
    times: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)   # Exp. 2
    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)          # Exp. 1
    deterministic_t: float = 0.25
    reverse_steps: int = 50
    num_samples: int = 128                      # Exp. 3 generations
    generate_steps: int = 100
    entropy_sequences: int = 256
    bootstrap: int = 1000
    precision: str = "fp32"                     # denoiser forward passes: fp32 | bf16 (autocast)


@dataclass(frozen=True)
class SweepConfig:
    data: DataConfig = field(default_factory=DataConfig)
    models: tuple[str, ...] = ("nano",)
    sizes: tuple[int, ...] = (32, 100, 316, 1000, 3162, 10000)
    steps: int = 2000
    batch_size: int = 32
    lr: float | None = None                      # None: the model's default recipe
    warmup: int | None = None
    ema: float | None = None
    seed: int = 0
    loss_on_padding: bool = False
    compile: bool = False
    precision: str = "auto"
    device: str = "auto"
    probes: ProbeSettings = field(default_factory=ProbeSettings)

    def validate(self) -> None:
        self.data.validate()
        require(len(self.models) >= 1, "the sweep needs at least one model config")
        require(len(self.sizes) >= 1, "the sweep needs at least one training size")
        for m in self.models:
            require(m in MODEL_CONFIGS,
                    f"unknown model config {m!r}; choose from {', '.join(MODEL_CONFIGS)}")
        require(all(isinstance(n, int) and n >= 1 for n in self.sizes),
                f"training sizes must be positive integers, got {list(self.sizes)}")
        require(len(set(self.sizes)) == len(self.sizes) and list(self.sizes) == sorted(self.sizes),
                f"training sizes must be strictly increasing, got {list(self.sizes)}")
        require(len(set(self.models)) == len(self.models), "model configs are repeated")
        require(self.steps >= 1 and self.batch_size >= 1, "steps and batch size must be >= 1")
        require(self.probes.precision in ("fp32", "bf16"),
                f"probe precision must be fp32 or bf16, got {self.probes.precision!r}")
        from attractor.sweep.runner import probe_configs

        for probe in probe_configs(self.probes).values():
            probe.validate()

    def to_dict(self) -> dict:
        return asdict(self)


def sweep_config_from_dict(d: dict) -> SweepConfig:
    """Inverse of ``SweepConfig.to_dict``; a dict that is not a valid sweep is a UserError."""
    try:
        d = dict(d)
        data = DataConfig(**d.pop("data"))
        probes = d.pop("probes")
        probes = ProbeSettings(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in probes.items()})
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        cfg = SweepConfig(data=data, probes=probes, **d)
        cfg.validate()
    except (KeyError, TypeError, ValueError, AttributeError) as err:    # UserError included
        raise UserError(f"sweep.json is not a valid sweep config of this version ({err})"
                        ) from None
    return cfg


def paper_spaced_sizes(pool: int, smallest: int = 32, n_log: int = 5, n_linear: int = 3) -> tuple:
    """Training sizes spaced as the paper's fractions: log-spaced through the memorisation
    regime (``smallest`` to pool / 10), then linear up to the whole pool."""
    require(pool > smallest, f"the training pool ({pool}) must exceed the smallest size")
    top_log = max(smallest + 1, pool // 10)
    logs = [round(math.exp(math.log(smallest) + i * (math.log(top_log) - math.log(smallest))
                           / (n_log - 1))) for i in range(n_log)] if n_log > 1 else [smallest]
    linear = [round(top_log + (pool - top_log) * (i + 1) / n_linear) for i in range(n_linear)]
    return tuple(sorted(set(logs + linear)))
