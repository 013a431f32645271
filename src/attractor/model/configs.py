"""Named DiT configurations and their analytic parameter counts.

``tiny``/``small``/``medium`` are the paper's Table 1 (length 128, conditioning 128, dropout 0.1).
``nano`` and ``micro`` are CPU-sized: they train in minutes on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from attractor.errors import UserError, require


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a DiT. ``hidden`` must be divisible by ``heads`` with an even head dimension."""

    hidden: int = 256
    blocks: int = 8
    heads: int = 8
    cond_dim: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.1
    time_features: int = 256  # width of the sinusoidal embedding of sigma_t

    def validate(self) -> None:
        require(self.hidden > 0 and self.blocks > 0 and self.heads > 0,
                "model hidden size, blocks and heads must be positive")
        require(self.hidden % self.heads == 0 and (self.hidden // self.heads) % 2 == 0,
                f"hidden {self.hidden} must split into {self.heads} heads of even size")
        require(0.0 <= self.dropout < 1.0, f"dropout must lie in [0, 1), got {self.dropout}")


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "nano": ModelConfig(hidden=64, blocks=2, heads=2, cond_dim=64, dropout=0.0),
    "micro": ModelConfig(hidden=128, blocks=4, heads=4, cond_dim=128, dropout=0.0),
    "tiny": ModelConfig(hidden=256, blocks=8, heads=8),
    "small": ModelConfig(hidden=768, blocks=12, heads=12),
    "medium": ModelConfig(hidden=1024, blocks=24, heads=16),
}


def get_model_config(name: str, **overrides) -> ModelConfig:
    """The named configuration, with optional field overrides (e.g. ``dropout=0.0``)."""
    if name not in MODEL_CONFIGS:
        raise UserError(f"unknown model config {name!r}; choose from {', '.join(MODEL_CONFIGS)}")
    cfg = replace(MODEL_CONFIGS[name], **overrides)
    cfg.validate()
    return cfg


def count_parameters(cfg: ModelConfig, vocab_size: int) -> int:
    """Exact number of parameters of ``DiT(cfg, vocab_size)``, counted term by term."""
    d, c, K = cfg.hidden, cfg.cond_dim, vocab_size
    embedding = K * d
    time_mlp = (cfg.time_features * c + c) + (c * c + c)
    block = (
        2 * d                                  # two LayerNorm weights (no bias)
        + c * 6 * d + 6 * d                    # adaLN-Zero: shift/scale/gate for attn and MLP
        + 3 * d * d + d * d                    # qkv and output projection, no bias
        + d * cfg.mlp_ratio * d + cfg.mlp_ratio * d + cfg.mlp_ratio * d * d + d  # MLP with biases
    )
    head = d + (c * 2 * d + 2 * d) + (d * K + K)  # final LayerNorm, adaLN shift/scale, linear
    return embedding + time_mlp + cfg.blocks * block + head


def core_parameters(cfg: ModelConfig, vocab_size: int) -> int:
    """Parameters excluding the input embedding and the once-per-sequence conditioning MLP.

    These are the ones applied to every token, the basis of the 6N FLOPs-per-token estimate.
    """
    d, c = cfg.hidden, cfg.cond_dim
    time_mlp = (cfg.time_features * c + c) + (c * c + c)
    return count_parameters(cfg, vocab_size) - vocab_size * d - time_mlp
