"""What a training step minimises, per model family, on the same data and the same transformer.

    uniform  the paper's UDDM: z_t by eq. (1), the continuous-time NELBO of eq. (3)
    masked   MDLM-style absorbing state: z_t masks each token with probability 1 - alpha_t; the
             loss is -alpha'_t / (1 - alpha_t) * (-log x_theta[x]) at masked positions (SUBS:
             the mask is never predicted; attractor.masked); the mask is one extra id, K
    ar       the autoregressive baseline: the same transformer with causal attention and no
             time input (sigma = 0), next-token cross-entropy -log p(x^l | x^<l) for l >= 1

Every family draws its times and corruption from the step's seeded generators, for the whole
global batch at once (so resume, accumulation and data parallelism stay exact), and returns
per-token losses (B, L) in float32 or higher, even when the forward pass runs under bf16
autocast.

The loss is computed from the (B, L, K) logits (head ``logits``) or fused with the output layer
(``fused``, ``recompute``: :mod:`attractor.head_loss`, the logits a chunk of tokens at a time);
the fused heads give the same loss and gradients to rounding. The masked family's fused head
forms logits only at masked positions (the others have zero loss), the autoregressive one only
at the L - 1 positions that predict a token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attractor import masked
from attractor.forward import q_xt
from attractor.head_loss import crossentropy_rows, head_loss
from attractor.loss_fused import fused_nelbo_per_token, nelbo_rows
from attractor.model import DiT
from attractor.schedule import sigma_from_alpha

FAMILIES = ("uniform", "masked", "ar")


def model_vocab(family: str, vocab_size: int) -> int:
    """Ids the model has: the tokenizer's K, plus the mask for the masked family."""
    return vocab_size + 1 if family == "masked" else vocab_size


def mask_id(family: str, vocab_size: int) -> int | None:
    """The absorbing state of the masked family: the id after the tokenizer's last."""
    return vocab_size if family == "masked" else None


def build_model(model_cfg, family: str, vocab_size: int) -> DiT:
    """The transformer of a family (the same widths and depth for all three)."""
    return DiT(model_cfg, model_vocab(family, vocab_size), causal=family == "ar")


def autoregressive_nll(logits: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """-log p(x^l | x^<l) per token from causal logits (B, L, K) whose position l - 1 predicts
    token l; position 0 (predicted by nothing) gets 0. (B, L) float32 or higher."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), x0[:, 1:], reduction="none")
    return torch.cat([torch.zeros_like(nll[:, :1]), nll], dim=1)


@dataclass(frozen=True)
class Objective:
    """The training objective of one family over a tokenizer of ``vocab_size`` ids."""

    family: str
    schedule: object
    vocab_size: int                     # the tokenizer's K (the masked model has K + 1 ids)
    amp: torch.dtype | None = None      # autocast dtype of the forward pass
    compiled: bool = False              # torch.compile the uniform loss's K-wide kernels
    head: str = "logits"                # logits | fused | recompute (head_loss.resolve_head)

    def corrupt(self, x0: torch.Tensor, t: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """z_t of each row at its time t: x0 (B, L) int64, t (B,) -> (B, L) int64 (ar: x0)."""
        if self.family == "uniform":
            return q_xt(x0, self.schedule.alpha(t), self.vocab_size, generator)
        if self.family == "masked":
            return masked.mask_forward(x0, self.schedule.alpha(t), self.vocab_size, generator)
        return x0

    def loss(self, net, x0: torch.Tensor, zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The loss integrand per token, (B, L), float32 or higher."""
        from attractor.train.loop import autocast_context

        alpha = self.schedule.alpha(t)
        sigma = torch.zeros_like(alpha) if self.family == "ar" else sigma_from_alpha(alpha)
        if self.head != "logits":
            with autocast_context(x0.device, self.amp):
                return net(zt, sigma, head=self._fused_head(x0, zt, alpha, t))
        with autocast_context(x0.device, self.amp):
            logits = net(zt, sigma)
        if self.family == "uniform":
            return fused_nelbo_per_token(logits, x0, zt, alpha, self.schedule.dalpha(t),
                                         self.compiled)
        if self.family == "masked":
            return masked.nelbo_per_token(logits, x0, zt, alpha, self.schedule.dalpha(t),
                                          self.vocab_size)
        return autoregressive_nll(logits, x0)

    def _fused_head(self, x0: torch.Tensor, zt: torch.Tensor, alpha: torch.Tensor,
                    t: torch.Tensor):
        """head(h (B, L, d), weight, bias) -> the family's loss per token (B, L), through
        :func:`attractor.head_loss.head_loss` on the positions that carry a loss."""
        B, L = x0.shape
        store = self.head == "fused"

        def per_token(values: torch.Tensor) -> torch.Tensor:              # (B,) -> (B L,)
            return values.to(torch.float64)[:, None].expand(B, L).reshape(-1)

        def head(h, weight, bias):
            flat = h.reshape(B * L, -1)
            if self.family == "uniform":
                kernel = nelbo_rows(x0.reshape(-1), zt.reshape(-1), per_token(alpha),
                                    per_token(self.schedule.dalpha(t)))
                return head_loss(flat, weight, bias, kernel, store).view(B, L)
            if self.family == "masked":
                rows = (zt.reshape(-1) == self.vocab_size).nonzero()[:, 0]
                w = per_token(-self.schedule.dalpha(t) / (1.0 - alpha))[rows]
                kernel = crossentropy_rows(x0.reshape(-1)[rows], w, excluded=self.vocab_size)
                loss = head_loss(flat[rows], weight, bias, kernel, store)
                return loss.new_zeros(B * L).index_put((rows,), loss).view(B, L)
            kernel = crossentropy_rows(x0[:, 1:].reshape(-1),
                                       torch.ones(B * (L - 1), dtype=torch.float64,
                                                  device=x0.device))
            loss = head_loss(h[:, :-1].reshape(B * (L - 1), -1), weight, bias, kernel, store)
            return torch.cat([loss.new_zeros(B, 1), loss.view(B, L - 1)], dim=1)

        return head
