"""The configuration of one training run, as frozen dataclasses saved in ``config.json``.

A run is reproducible from its saved config alone: the data (corpus, tokenizer, split and the
fixed permutation that defines nested fractions), the model shape, the optimiser and the seed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from attractor.data import DataConfig
from attractor.errors import UserError, require
from attractor.model.configs import MODEL_CONFIGS, ModelConfig, get_model_config
from attractor.schedule import SCHEDULES

PAPER_CONFIGS = ("tiny", "small", "medium")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then a constant rate (Duo's LM1B recipe for the paper configs)."""

    lr: float = 3e-4
    warmup: int = 2500
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip: float = 1.0
    ema: float = 0.9999

    def validate(self) -> None:
        require(self.lr > 0, f"learning rate must be positive, got {self.lr}")
        require(self.warmup >= 0, f"warm-up steps must be >= 0, got {self.warmup}")
        require(0.0 <= self.ema < 1.0, f"EMA decay must lie in [0, 1), got {self.ema}")
        require(self.clip > 0, f"gradient clip must be positive, got {self.clip}")
        require(self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}")
        require(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0,
                "AdamW needs betas in [0, 1) and eps > 0")


# Scaled-down defaults for the CPU configs: short runs need a faster warm-up and a shorter EMA.
CPU_OPTIM = OptimConfig(lr=1e-3, warmup=100, ema=0.999)


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model_name: str = "nano"
    model: ModelConfig = field(default_factory=lambda: MODEL_CONFIGS["nano"])
    fraction: float | None = None       # exactly one of fraction / num_train
    num_train: int | None = None
    steps: int = 2000
    batch_size: int = 32                 # global batch per optimiser step
    grad_accum: int = 1
    optim: OptimConfig = field(default_factory=lambda: CPU_OPTIM)
    schedule: str = "loglinear"
    sampling_eps: float = 1e-3           # training times t in [sampling_eps, 1]
    loss_on_padding: bool = False        # Duo excludes pads from the loss; True trains them too
    seed: int = 0                        # model initialisation, data order, noise
    precision: str = "auto"              # auto | fp32 | bf16
    compile: bool = False                # torch.compile the denoiser and the loss kernels
    device: str = "auto"                 # auto | cpu | cuda | cuda:N
    eval_every: int = 500
    eval_sequences: int = 256
    checkpoint_every: int = 250
    log_every: int = 10

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.optim.validate()
        require((self.fraction is None) != (self.num_train is None),
                "give exactly one of --fraction or --num-train")
        if self.fraction is not None:
            require(0.0 < self.fraction <= 1.0,
                    f"fraction must lie in (0, 1], got {self.fraction}")
        if self.num_train is not None:
            require(self.num_train >= 1, f"--num-train must be at least 1, got {self.num_train}")
        require(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        require(self.batch_size >= 1 and self.grad_accum >= 1, "batch size and accumulation >= 1")
        require(self.batch_size % self.grad_accum == 0,
                f"batch size {self.batch_size} is not divisible by grad accumulation "
                f"{self.grad_accum}")
        require(self.schedule in SCHEDULES, f"unknown noise schedule {self.schedule!r}")
        require(self.precision in ("auto", "fp32", "bf16"),
                f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        require(0.0 < self.sampling_eps < 1.0, "sampling eps must lie in (0, 1)")
        require(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device) is not None,
                f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        require(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        for name in ("eval_every", "checkpoint_every", "log_every", "eval_sequences"):
            require(getattr(self, name) >= 1, f"{name.replace('_', '-')} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_optim(model_name: str) -> OptimConfig:
    """Duo's LM1B recipe for the paper's configs, the scaled-down one for CPU configs."""
    return OptimConfig() if model_name in PAPER_CONFIGS else CPU_OPTIM


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown {where} setting(s): {', '.join(unknown)}")
    return cls(**values)


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """Inverse of ``TrainConfig.to_dict`` (unknown keys are errors)."""
    d = dict(d)
    data = _build(DataConfig, d.pop("data", {}), "data")
    model = _build(ModelConfig, d.pop("model", {}), "model")
    optim = _build(OptimConfig, d.pop("optim", {}), "optim")
    cfg = _build(TrainConfig, d, "train")
    return replace(cfg, data=data, model=model, optim=optim)


def make_config(model_name: str = "nano", model_overrides: dict | None = None,
                optim_overrides: dict | None = None, data: DataConfig | None = None,
                **train_fields) -> TrainConfig:
    """A validated TrainConfig from a model name and overrides (what the CLI calls)."""
    model = get_model_config(model_name, **(model_overrides or {}))
    optim = replace(default_optim(model_name), **(optim_overrides or {}))
    cfg = TrainConfig(data=data or DataConfig(), model_name=model_name, model=model, optim=optim,
                      **train_fields)
    cfg.validate()
    return cfg


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {vb!r} -> {va!r}")
    return out
