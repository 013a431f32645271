"""The denoiser: a diffusion transformer (DiT) over token ids, conditioned on sigma_t."""

from attractor.model.configs import MODEL_CONFIGS, ModelConfig, count_parameters, get_model_config
from attractor.model.dit import DiT

__all__ = ["MODEL_CONFIGS", "DiT", "ModelConfig", "count_parameters", "get_model_config"]
