"""A learned score s_theta(x, sigma) trained by denoising score matching under a VE schedule.

Glossary:

- VE process: x_sigma = x0 + sigma * eps, eps ~ N(0, I); sigma(t) = sigma_min (sigma_max /
  sigma_min)^t for t in [0, 1] (Song et al., arXiv 2011.13456, the VE SDE).
- Score network: s_theta(x, sigma) = F(c_in x, emb(log sigma)) / sigma, an MLP F with a Fourier
  embedding of the noise level; c_in = 1 / sqrt(sigma^2 + sigma_data^2) keeps the input of F at
  unit scale at every noise level. Dividing by sigma makes F predict -eps, a target of unit scale
  at every noise level too.
- Loss (denoising score matching, weight lambda(sigma) = sigma^2):
  E_{t, x0, eps} || sigma s_theta(x0 + sigma eps, sigma) + eps ||^2.

:class:`ScoreModel` follows the scikit-learn conventions: the constructor stores the config,
``fit`` learns ``net_`` and returns self. The weights used for sampling are an exponential moving
average of the trained ones.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from attractor.config import check, setting


@dataclass(frozen=True)
class ScoreModelConfig:
    """Sizes and optimisation of the score MLP (the defaults fit a 2-D task in tens of seconds)."""

    hidden: int = setting(128, help="width of the score MLP")
    layers: int = setting(3, help="hidden layers of the score MLP")
    fourier: int = setting(16, help="random Fourier frequencies embedding log sigma")
    sigma_min: float = setting(0.01, help="smallest noise level of the VE schedule")
    sigma_max: float = setting(1.0, help="largest noise level of the VE schedule")
    iterations: int = setting(5000, help="score-matching iterations per model")
    batch: int = setting(256, help="score-matching minibatch size")
    lr: float = setting(2e-3, help="Adam learning rate (cosine-annealed to 0)")
    ema: float = setting(0.995, help="decay of the weight average used for sampling")

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "fourier", "iterations", "batch"):
            check(getattr(self, name) >= 1, name, f"must be >= 1; got {getattr(self, name)}")
        check(self.sigma_min > 0, "sigma_min", f"must be > 0; got {self.sigma_min}")
        check(self.sigma_max > self.sigma_min, "sigma_max",
              f"must exceed sigma_min = {self.sigma_min}; got {self.sigma_max}")
        check(self.lr > 0, "lr", f"must be > 0; got {self.lr}")
        check(0 <= self.ema < 1, "ema", f"must lie in [0, 1); got {self.ema}")


def ve_sigma(t: torch.Tensor, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """sigma(t) = sigma_min (sigma_max / sigma_min)^t: same shape as ``t``."""
    return sigma_min * (sigma_max / sigma_min) ** t


class ScoreMLP(nn.Module):
    """F(c_in x, emb(log sigma)) / sigma with a fixed random Fourier embedding of log sigma."""

    def __init__(self, dim: int, cfg: ScoreModelConfig, sigma_data: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.sigma_data = sigma_data
        freqs = torch.randn(cfg.fourier, generator=generator) * 4.0
        self.register_buffer("freqs", freqs)
        width = [dim + 2 * cfg.fourier] + [cfg.hidden] * cfg.layers
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(width):
            blocks += [nn.Linear(a, b), nn.SiLU()]
        blocks.append(nn.Linear(cfg.hidden, dim))
        self.net = nn.Sequential(*blocks)
        self._init(generator)

    def _init(self, generator: torch.Generator) -> None:
        # Explicit initialisation so that the weights depend on the generator only.
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                with torch.no_grad():
                    layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator)
                                        * 2 - 1) * bound)
                    layer.bias.zero_()

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x: (B, d) float32, sigma: (B,) -> score (B, d)."""
        c_in = 1.0 / torch.sqrt(sigma**2 + self.sigma_data**2)
        phase = sigma.log()[:, None] / 4.0 * self.freqs[None, :]  # (B, F)
        emb = torch.cat([phase.sin(), phase.cos()], dim=-1)
        return self.net(torch.cat([x * c_in[:, None], emb], dim=-1)) / sigma[:, None]


def dsm_loss(net: nn.Module, x0: torch.Tensor, sigma: torch.Tensor,
             eps: torch.Tensor) -> torch.Tensor:
    """Denoising score matching with lambda = sigma^2: mean || sigma s(x0 + sigma eps) + eps ||^2."""
    xt = x0 + sigma[:, None] * eps
    return ((sigma[:, None] * net(xt, sigma) + eps) ** 2).sum(-1).mean()


class ScoreModel:
    """Learned score of one training set; ``fit(patterns, generator)`` returns self."""

    def __init__(self, config: ScoreModelConfig | None = None) -> None:
        self.config = ScoreModelConfig() if config is None else config

    def fit(self, patterns: torch.Tensor, generator: torch.Generator,
            progress: bool = False) -> ScoreModel:
        """Train on ``patterns`` (K, d); minibatches resample the K points with replacement."""
        cfg = self.config
        data = patterns.to(torch.float32)
        sigma_data = float(data.std()) if data.shape[0] > 1 else 1.0
        net = ScoreMLP(data.shape[1], cfg, sigma_data, generator)
        ema = copy.deepcopy(net).requires_grad_(False)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.iterations)
        losses = []
        for _ in _steps(cfg.iterations, progress):
            idx = torch.randint(data.shape[0], (cfg.batch,), generator=generator)
            t = torch.rand(cfg.batch, generator=generator)
            eps = torch.randn(cfg.batch, data.shape[1], generator=generator)
            loss = dsm_loss(net, data[idx], ve_sigma(t, cfg.sigma_min, cfg.sigma_max), eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(p, 1.0 - cfg.ema)
            losses.append(loss.item())
        self.net_ = ema.eval()
        self.final_loss_ = sum(losses[-100:]) / len(losses[-100:])
        return self

    def score(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """s_theta(x, sigma): (B, d) in the dtype of ``x``."""
        with torch.no_grad():
            s = self.net_(x.to(torch.float32), torch.full((x.shape[0],), float(sigma)))
        return s.to(x.dtype)

    def denoise(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Tweedie: D(x) = x + sigma^2 s_theta(x, sigma), (B, d)."""
        return x + sigma**2 * self.score(x, sigma)

    def energy_hessian(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """Learned analogue of Hess E: -sigma^2 d s_theta / d x at each row of x, (B, d, d)."""
        net = self.net_
        sig = torch.full((1,), float(sigma))

        def one(row: torch.Tensor) -> torch.Tensor:
            return net(row[None].to(torch.float32), sig)[0]

        jac = torch.stack([torch.autograd.functional.jacobian(one, row) for row in x])
        hess = -(sigma**2) * jac.to(torch.float64)
        return 0.5 * (hess + hess.transpose(-1, -2))


def _steps(n: int, progress: bool):
    if not progress:
        return range(n)
    from tqdm import tqdm

    return tqdm(range(n), desc="score matching", leave=False, mininterval=1.0)
