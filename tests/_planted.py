"""Planted denoisers whose right answers are known, and runs built around them.

BayesMemoriser   the exact posterior mean E[x | z_t] under eq. (1) for x uniform over a stored
                 set, smoothed: x_theta = (1 - s) E[x | z_t] + s / K. A perfect memoriser.
planted_run      a :class:`attractor.run.Run` of random sequences whose first ``n_train`` are
                 the training set, with any denoiser as its model
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from attractor.data import DataConfig, Dataset
from attractor.data.dataset import fingerprint
from attractor.data.tokenizer import word_tokenizer
from attractor.run import Run
from attractor.schedule import LogLinear
from attractor.train.config import TrainConfig


class BayesMemoriser(torch.nn.Module):
    """Stored sequences (M, L) int64 over K ids; forward(z_t (B, L), sigma (B,)) -> (B, L, K)."""

    def __init__(self, stored: torch.Tensor, vocab_size: int, smoothing: float = 0.01):
        super().__init__()
        self.stored, self.vocab_size, self.smoothing = stored, vocab_size, smoothing
        self.one_hot = torch.nn.functional.one_hot(stored, vocab_size).to(torch.float64)

    def forward(self, zt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(-sigma.to(torch.float64))[:, None, None]                # (B, 1, 1)
        match = (zt[:, None, :] == self.stored[None]).to(torch.float64)          # (B, M, L)
        # q(z_t | x) per position is alpha [z = x] + (1 - alpha) / K, i.e. proportional to
        # K alpha [z = x] + 1 - alpha
        log_lik = torch.log(self.vocab_size * alpha * match + 1 - alpha).sum(-1)  # (B, M)
        w = torch.softmax(log_lik, dim=-1)
        mean = torch.einsum("bm,mlk->blk", w, self.one_hot)
        x = (1 - self.smoothing) * mean + self.smoothing / self.vocab_size
        return x.log().to(torch.float32)


def random_sequences(n: int, length: int, vocab_size: int, seed: int = 0) -> torch.Tensor:
    """(n, L) distinct i.i.d. uniform ids (distinct with overwhelming probability, checked)."""
    seqs = torch.randint(0, vocab_size, (n, length), generator=torch.Generator().manual_seed(seed))
    assert len(torch.unique(seqs, dim=0)) == n
    return seqs


def planted_run(directory: Path, sequences: torch.Tensor, n_train: int, model: torch.nn.Module,
                vocab_size: int) -> Run:
    """A run over ``sequences`` (N, L): rows [0, n_train) trained on, the rest held out."""
    words = [f"w{i}" for i in range(vocab_size - 4)]       # ids 0-3 are the special tokens
    tokenizer = word_tokenizer(words)
    N = len(sequences)
    mask = torch.ones_like(sequences, dtype=torch.bool)
    dataset = Dataset(config=DataConfig(), tokenizer=tokenizer, vocab_size=vocab_size, pad_id=0,
                      bos_id=1, eos_id=2, sequences=sequences, loss_mask=mask,
                      test_ids=torch.arange(n_train, N), train_order=torch.arange(n_train),
                      fingerprint=fingerprint(sequences, mask))
    directory.mkdir(parents=True, exist_ok=True)
    return Run(directory=directory, config=TrainConfig(), vocab_size=vocab_size, model=model,
               tokenizer=tokenizer, dataset=dataset, train_ids=torch.arange(n_train),
               test_ids=torch.arange(n_train, N), schedule=LogLinear(),
               step=TrainConfig().steps, device=torch.device("cpu"))


def standard_error(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / n)
