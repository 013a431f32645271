"""Named DiT configurations and their analytic parameter counts.

``tiny``/``small``/``medium`` are the paper's Table 1 (length 128, conditioning 128, dropout 0.1).
``nano`` and ``micro`` are CPU-sized: they train in minutes on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass

from attractor.config import check, setting


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a DiT: ``hidden`` splits into ``heads`` heads of even size."""

    hidden: int = setting(256, help="hidden width d")
    blocks: int = setting(8, help="transformer blocks")
    heads: int = setting(8, help="attention heads")
    cond_dim: int = setting(128, help="width of the time conditioning")
    mlp_ratio: int = setting(4, help="MLP width / hidden width")
    dropout: float = setting(0.1, help="dropout of the DiT")
    time_features: int = setting(256, help="width of the sinusoidal embedding of sigma_t")
    time_conditioning: bool = setting(True, help="condition on sigma_t; off, the denoiser sees "
                                      "sigma = 0 at every t (MDLM's released checkpoints)")

    def __post_init__(self) -> None:
        for name in ("hidden", "blocks", "heads", "cond_dim", "mlp_ratio", "time_features"):
            check(getattr(self, name) >= 1, name, f"must be at least 1; got {getattr(self, name)}")
        check(self.hidden % self.heads == 0 and (self.hidden // self.heads) % 2 == 0, "hidden",
              f"({self.hidden}) must split into {self.heads} heads of even size")
        check(self.time_features % 2 == 0, "time_features", "must be even (cos and sin)")
        check(0.0 <= self.dropout < 1.0, "dropout", f"must lie in [0, 1); got {self.dropout}")


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "nano": ModelConfig(hidden=64, blocks=2, heads=2, cond_dim=64, dropout=0.0),
    "micro": ModelConfig(hidden=128, blocks=4, heads=4, cond_dim=128, dropout=0.0),
    "tiny": ModelConfig(hidden=256, blocks=8, heads=8),
    "small": ModelConfig(hidden=768, blocks=12, heads=12),
    "medium": ModelConfig(hidden=1024, blocks=24, heads=16),
}


def get_model_config(name: str) -> ModelConfig:
    """The named configuration."""
    check(name in MODEL_CONFIGS, "model_name", f"is {name!r}, not one of "
          f"{', '.join(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name]


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
