"""The denoiser contract: what every model the probes can open provides.

An adapter (:mod:`attractor.adapters.registry`) turns a checkpoint on disk into a
:class:`LoadedModel`:

    module      (zt (B, L) int64, time (B,)) -> logits (B, L, K); ``time`` is sigma = -log
                alpha_t, t, or absent, as ``time_input`` says
    family      "uniform" (uniform-state diffusion, eq. 1), "masked" (absorbing-state) or "ar"
                (an autoregressive model exported by attractor: causal, called with sigma = 0)
    schedule    the alpha_t of its noise process (log-linear for every supported release)
    tokenizer   a ``tokenizers.Tokenizer`` of K ids, and the special ids pad, bos, eos, mask
    max_length  the longest sequence the model takes (None: not stated)

The probes talk to one signature, (zt, sigma) -> logits: :meth:`LoadedModel.sigma_module`
wraps a module that takes t or no time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from attractor.errors import UserError

FAMILIES = ("uniform", "masked", "ar")
TIME_INPUTS = ("sigma", "t", "none")


@dataclass(frozen=True)
class Special:
    """Special token ids of a model's vocabulary (None where it has none)."""

    pad: int | None = None
    bos: int | None = None
    eos: int | None = None
    mask: int | None = None


class TimeAsSigma(torch.nn.Module):
    """A module taking t (or no time) seen as one taking sigma = -log alpha_t."""

    def __init__(self, module: torch.nn.Module, time_input: str, schedule):
        super().__init__()
        self.module, self.time_input, self.schedule = module, time_input, schedule

    def forward(self, zt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.time_input == "none":
            return self.module(zt)
        alpha = torch.exp(-sigma.to(torch.float64))
        return self.module(zt, self.schedule.time_of_alpha(alpha).to(torch.float32))


@dataclass
class LoadedModel:
    module: torch.nn.Module
    family: str
    time_input: str
    schedule: object
    vocab_size: int
    tokenizer: object                  # tokenizers.Tokenizer
    special: Special
    max_length: int | None
    source: dict = field(default_factory=dict)       # adapter, path, weights, ... (for JSON)

    def __post_init__(self) -> None:
        assert self.family in FAMILIES and self.time_input in TIME_INPUTS
        tok_vocab = self.tokenizer.get_vocab_size(with_added_tokens=True)
        if tok_vocab > self.vocab_size:
            raise UserError(f"the tokenizer has {tok_vocab:,} tokens but the model's vocabulary "
                            f"is {self.vocab_size:,}; give the tokenizer the model was trained "
                            "with (--tokenizer)")
        if self.family == "masked" and self.special.mask is None:
            raise UserError("a masked diffusion model needs its mask id: the tokenizer names "
                            "no mask token; give --mask-id")

    def sigma_module(self) -> torch.nn.Module:
        """The module as (zt, sigma) -> logits, the signature every probe calls."""
        if self.time_input == "sigma":
            return self.module
        return TimeAsSigma(self.module, self.time_input, self.schedule)


def special_ids(tokenizer, **given: int | None) -> Special:
    """Special ids from the tokenizer's own tokens (GPT-2, BERT, sentencepiece styles, and
    attractor's [PAD]/[BOS]/[EOS]), overridden by ``given`` ids that are not None."""
    names = {"pad": ("[PAD]", "<pad>", "<|pad|>"),
             "bos": ("[BOS]", "<|endoftext|>", "[CLS]", "<s>", "<|begin_of_text|>"),
             "eos": ("[EOS]", "<|endoftext|>", "[SEP]", "</s>", "<|end_of_text|>", "<|eot_id|>"),
             "mask": ("[MASK]", "<mask>", "<|mdm_mask|>", "<|mask|>")}
    found = {}
    for role, candidates in names.items():
        ids = [tokenizer.token_to_id(c) for c in candidates]
        found[role] = next((i for i in ids if i is not None), None)
    found.update({k: v for k, v in given.items() if v is not None})
    return Special(**found)
