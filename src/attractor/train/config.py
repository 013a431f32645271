"""The configuration of one training run, as frozen dataclasses saved in ``config.json``.

A run is reproducible from its saved config alone: the data (corpus, tokenizer, split and the
fixed permutation that defines nested fractions), the model shape, the optimiser and the seed.
The optimiser defaults are a CPU-sized recipe; Duo's LM1B recipe for the paper's model sizes is
the shipped config file ``duo-lm1b`` (``attractor train --config duo-lm1b``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from attractor.config import check, setting
from attractor.data.config import DataConfig
from attractor.head_loss import AUTO_MIN_VOCAB, HEADS
from attractor.model.configs import MODEL_CONFIGS, ModelConfig
from attractor.schedule import SCHEDULES
from attractor.train.objectives import FAMILIES

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear warm-up, then a constant rate, and an EMA of the weights."""

    lr: float = setting(1e-3, help="peak learning rate")
    warmup: int = setting(100, help="linear warm-up steps")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    beta1: float = setting(0.9, help="AdamW beta1")
    beta2: float = setting(0.999, help="AdamW beta2")
    eps: float = setting(1e-8, help="AdamW epsilon")
    clip: float = setting(1.0, help="gradient-norm clip")
    ema: float = setting(0.999, help="EMA decay of the evaluation weights")

    def __post_init__(self) -> None:
        check(self.lr > 0, "lr", f"must be positive; got {self.lr}")
        check(self.warmup >= 0, "warmup", f"must be >= 0; got {self.warmup}")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0; got {self.weight_decay}")
        for name in ("beta1", "beta2", "ema"):
            value = getattr(self, name)
            check(0.0 <= value < 1.0, name, f"must lie in [0, 1); got {value}")
        check(self.eps > 0, "eps", f"must be positive; got {self.eps}")
        check(self.clip > 0, "clip", f"must be positive; got {self.clip}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data, model, optimiser, training size, steps, seed and hardware."""

    data: DataConfig = setting(help="corpus and sequences", factory=DataConfig)
    family: str = setting("uniform", help="uniform (the paper's uniform-state diffusion) | "
                          "masked (absorbing-state, MDLM-style) | ar (autoregressive baseline: "
                          "the same transformer, causal)")
    model_name: str = setting("nano", help="model config: " + " | ".join(MODEL_CONFIGS),
                              flag="model")
    model: ModelConfig = setting(help="DiT shape", factory=lambda: MODEL_CONFIGS["nano"],
                                 presets=MODEL_CONFIGS, named_by="model_name")
    optim: OptimConfig = setting(help="optimiser", factory=OptimConfig)
    fraction: float | None = setting(None, help="fraction of the training pool, in (0, 1] "
                                     "(none with num_train unset: the whole pool)")
    num_train: int | None = setting(None, help="number of training sequences (instead of "
                                    "fraction)")
    steps: int = setting(2000, help="optimiser steps")
    batch_size: int = setting(32, help="global batch size")
    grad_accum: int = setting(1, help="gradient accumulation micro-steps")
    schedule: str = setting("loglinear", help="noise schedule: " + " | ".join(SCHEDULES))
    sampling_eps: float = setting(1e-3, help="training times t are drawn in [sampling_eps, 1]")
    loss_on_padding: bool = setting(False, help="train the pad positions too (Duo does not)")
    seed: int = setting(0, help="seed of initialisation, data order, noise and dropout")
    precision: str = setting("auto", help="auto | fp32 | bf16 (autocast; the loss in fp32)")
    compile: bool = setting(False, help="torch.compile the denoiser and the loss kernels")
    head: str = setting("auto", help="output layer and loss: logits (the (B, L, K) logits, then "
                        "the loss) | fused (fused with the loss, keeps only dL/dlogits) | "
                        "recompute (fused, keeps nothing B x L x K; one more product) | auto "
                        f"(fused from K = {AUTO_MIN_VOCAB} on, logits under --compile)")
    device: str = setting("auto", help="auto | cpu | cuda | cuda:N")
    eval_every: int = setting(500, help="steps between validation NELBOs")
    eval_sequences: int = setting(256, help="sequences per validation NELBO")
    checkpoint_every: int = setting(250, help="steps between checkpoints")
    log_every: int = setting(10, help="steps between metrics rows")

    def __post_init__(self) -> None:
        check(self.family in FAMILIES, "family",
              f"is {self.family!r}, not one of {', '.join(FAMILIES)}")
        check(self.model_name in MODEL_CONFIGS, "model_name",
              f"is {self.model_name!r}, not one of {', '.join(MODEL_CONFIGS)}")
        check(self.fraction is None or self.num_train is None, "num_train",
              "and fraction cannot both be set; give one of them")
        if self.fraction is not None:
            check(0.0 < self.fraction <= 1.0, "fraction", f"must lie in (0, 1]; got "
                  f"{self.fraction}")
        if self.num_train is not None:
            check(self.num_train >= 1, "num_train", f"must be at least 1; got {self.num_train}")
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_sequences",
                     "checkpoint_every", "log_every"):
            check(getattr(self, name) >= 1, name, f"must be at least 1; got "
                  f"{getattr(self, name)}")
        check(self.batch_size % self.grad_accum == 0, "grad_accum",
              f"({self.grad_accum}) must divide the batch size ({self.batch_size})")
        check(self.schedule in SCHEDULES, "schedule",
              f"is {self.schedule!r}, not one of {', '.join(SCHEDULES)}")
        check(self.head in HEADS, "head", f"is {self.head!r}, not one of {', '.join(HEADS)}")
        check(not (self.compile and self.head in ("fused", "recompute")), "head",
              f"{self.head} runs eagerly, not under --compile; use --head logits (or auto)")
        check(self.precision in PRECISIONS, "precision",
              f"is {self.precision!r}, not one of {', '.join(PRECISIONS)}")
        check(0.0 < self.sampling_eps < 1.0, "sampling_eps", "must lie in (0, 1)")
        check(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", self.device) is not None, "device",
              f"is {self.device!r}; use auto, cpu, cuda or cuda:N")
        check(self.seed >= 0, "seed", f"must be >= 0; got {self.seed}")


def read_run_config(run_dir: str | Path) -> tuple[TrainConfig, dict]:
    """The training config saved in ``run_dir/config.json`` and the file's other entries
    (schema-checked: :func:`attractor.artifacts.run_config`)."""
    from attractor.artifacts import run_config

    return run_config(run_dir)
