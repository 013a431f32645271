"""A diffusion transformer (DiT) denoiser for uniform-state diffusion (docs/notation.md §5).

Input z_t (B, L) int64 and sigma_t (B,); output logits (B, L, K) whose softmax is x_theta, the
prediction of the clean token at every position (paper eqs. 4-5).

    h = E[z_t]                                       (B, L, d) token embedding
    c = SiLU(MLP(sinusoid(sigma_t)))                 (B, cond) time conditioning
    per block (pre-LN, adaLN-Zero):
        h = h + g1 * Attn(LN(h) (1 + s1) + b1)       rotary bidirectional self-attention (attention.py)
        h = h + g2 * MLP (LN(h) (1 + s2) + b2)       (b_i, s_i, g_i) = Linear(c), zero-initialised
    logits = Linear(LN(h) (1 + s) + b)                zero-initialised, so x_theta starts uniform

LayerNorms run in float32 even under bf16 autocast. Pads are attended to (no attention mask), as in
Duo; they are only excluded from the loss. With ``ModelConfig.time_conditioning`` off, sigma_t is
replaced by 0 before the time embedding, as MDLM does, so c is one learned constant vector.
The layout and conventions are those of the Duo/UDLM/MDLM DiT, whose released checkpoints load
through :mod:`attractor.adapters` (docs/checkpoints.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attractor.model.attention import rotary_attention, rotary_tables
from attractor.model.configs import ModelConfig


def sinusoidal_embedding(sigma: torch.Tensor, dim: int, max_period: float = 1e4) -> torch.Tensor:
    """(B,) -> (B, dim) features [cos(sigma w_k), sin(sigma w_k)], w_k = max_period^(-k/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=sigma.device) / half)
    args = sigma.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class LayerNormNoBias(nn.Module):
    """LayerNorm with a weight and no bias, computed in float32 (docs/notation.md §5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.layer_norm(x.float(), (self.dim,)) * self.weight

    def modulated(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """adaLN of the normalised input, LN(x) w (1 + scale) + shift: x (B, L, d), shift and
        scale (B, 1, d) -> float32 (or wider).

        With a bf16 shift and scale (autocast) it is one pass over (B, L, d), w (1 + scale) being
        (B, 1, d); this halves the time of these elementwise steps in a bf16 training step. In
        float32 the products are taken in the order of earlier versions, so float32 runs (the
        demo's) are bit-for-bit unchanged.
        """
        if shift.dtype != torch.bfloat16:
            return self(x) * (1 + scale) + shift
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.addcmul(shift, F.layer_norm(x.float(), (self.dim,)),
                                 self.weight * (1 + scale))


# Dropout probabilities are drawn on a CPU as 16-bit integers: p counts in units of 2^-16.
DROPOUT_UNITS = 1 << 16


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: each entry of x kept with probability 1 - p and scaled by 1 / (1 - p).

    On a CPU the keep mask is read from the four 16-bit lanes of 64-bit random words, one
    generator call per four entries instead of one Bernoulli draw each (3.3 against 7.8 ms
    forward and backward for a 32 x 128 x 256 bf16 activation on 2 cores); p is then
    round(p 2^16) / 2^16 (0.1 becomes 0.1000061). Elsewhere (off the CPU, under torch.compile,
    and for p that rounds to 0 or 1) this is ``F.dropout``. Both draw from torch's default
    generator, which the trainer seeds per step.
    """
    if not training or p == 0.0:
        return x
    dropped = round(p * DROPOUT_UNITS)
    if x.device.type != "cpu" or torch.compiler.is_compiling() or not 0 < dropped < DROPOUT_UNITS:
        return F.dropout(x, p, True)
    n = x.numel()
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((n + 3) // 4,), dtype=torch.int64,
                          device=x.device)
    lanes = words.view(torch.int16)[:n].view(x.shape)            # uniform on [-2^15, 2^15)
    keep = lanes >= dropped - DROPOUT_UNITS // 2                  # P = 1 - dropped / 2^16
    return x * keep.to(x.dtype).mul_(DROPOUT_UNITS / (DROPOUT_UNITS - dropped))


class TimeEmbedding(nn.Module):
    """sigma_t -> sinusoid(256) -> Linear -> SiLU -> Linear, then SiLU (B, cond_dim)."""

    def __init__(self, cond_dim: int, features: int):
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, cond_dim), nn.SiLU(),
                                 nn.Linear(cond_dim, cond_dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        return F.silu(self.mlp(sinusoidal_embedding(sigma, self.features)))


class DiTBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, causal: bool = False):
        super().__init__()
        d, self.heads, self.causal = cfg.hidden, cfg.heads, causal
        self.norm1, self.norm2 = LayerNormNoBias(d), LayerNormNoBias(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(approximate="tanh"),
                                 nn.Linear(cfg.mlp_ratio * d, d))
        self.adaln = nn.Linear(cfg.cond_dim, 6 * d)
        nn.init.zeros_(self.adaln.weight)
        nn.init.zeros_(self.adaln.bias)
        self.dropout_p = cfg.dropout

    def forward(self, h: torch.Tensor, c: torch.Tensor, rotary) -> torch.Tensor:
        b1, s1, g1, b2, s2, g2 = self.adaln(c)[:, None].chunk(6, dim=-1)   # each (B, 1, d)
        qkv = self.qkv(self.norm1.modulated(h, b1, s1))                      # (B, L, 3d)
        a = self.attn_out(rotary_attention(qkv, self.heads, rotary, self.causal))  # (B, L, d)
        h = h + g1 * dropout(a, self.dropout_p, self.training)
        m = self.mlp(self.norm2.modulated(h, b2, s2))
        return h + g2 * dropout(m, self.dropout_p, self.training)


class DiT(nn.Module):
    """The denoiser x_theta(z_t, sigma_t) of the paper (Table 1 shapes via ModelConfig).

    ``causal=True`` makes every position attend to itself and the positions before it only:
    the same transformer as the autoregressive baseline, whose logits at position l predict
    token l + 1 (it is called with sigma = 0).
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, causal: bool = False):
        super().__init__()
        self.cfg, self.vocab_size, self.causal = cfg, vocab_size, causal
        self.embedding = nn.Parameter(torch.empty(vocab_size, cfg.hidden))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))
        self.time = TimeEmbedding(cfg.cond_dim, cfg.time_features)
        self.blocks = nn.ModuleList(DiTBlock(cfg, causal) for _ in range(cfg.blocks))
        self.norm_final = LayerNormNoBias(cfg.hidden)
        self.adaln_final = nn.Linear(cfg.cond_dim, 2 * cfg.hidden)
        self.output = nn.Linear(cfg.hidden, vocab_size)
        for layer in (self.adaln_final, self.output):   # zero init: x_theta starts uniform
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self._rotary_cache: dict = {}

    def _rotary(self, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (length, str(device))
        if key not in self._rotary_cache:
            self._rotary_cache[key] = rotary_tables(length, self.cfg.hidden // self.cfg.heads,
                                                    device)
        return self._rotary_cache[key]

    def features(self, zt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """zt (B, L) int64, sigma (B,) float -> the output layer's input (B, L, d)."""
        if not self.cfg.time_conditioning:     # MDLM-style: one conditioning vector for every t
            sigma = torch.zeros_like(sigma)
        h = F.embedding(zt, self.embedding)                                 # (B, L, d)
        c = self.time(sigma)                                                # (B, cond)
        rotary = self._rotary(zt.shape[1], zt.device)
        for block in self.blocks:
            h = block(h, c, rotary)
        shift, scale = self.adaln_final(c)[:, None].chunk(2, dim=-1)
        return self.norm_final.modulated(h, shift, scale)

    def forward(self, zt: torch.Tensor, sigma: torch.Tensor, head=None) -> torch.Tensor:
        """zt (B, L) int64, sigma (B,) float -> logits (B, L, K); or, given ``head``,
        ``head(features, output.weight, output.bias)`` (a loss fused with the output layer,
        :mod:`attractor.head_loss`), through whatever wraps the module (DDP, compile)."""
        h = self.features(zt, sigma)
        if head is None:
            return self.output(h)
        return head(h, self.output.weight, self.output.bias)
