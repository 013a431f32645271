"""A built dataset: the sequence pool, its fixed test split and the training permutation.

Membership is the ground truth of every later measurement, so it is exact:

1. the pool is deduplicated on the final token sequence (after tokenisation and padding or
   packing), so "this sequence was trained on" is a statement about one row;
2. the test split is drawn from the pool with the data seed and no training candidate equals a
   test sequence (in wrap mode, train and test chunks come from disjoint sentence sets);
3. all training subsets are prefixes of one seeded permutation of the remaining ids, so a
   smaller fraction is a subset of every larger one;
4. ``fingerprint`` (sha256 of the pool) lets a run check that a rebuilt pool is the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from tokenizers import Tokenizer

from attractor.config import to_dict
from attractor.data.config import DataConfig
from attractor.errors import UserError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A built pool of sequences with its split; see the module docstring for the guarantees."""

    config: DataConfig
    tokenizer: Tokenizer
    vocab_size: int  # K, special tokens included
    pad_id: int
    bos_id: int
    eos_id: int
    sequences: torch.Tensor  # (N, L) int64, distinct rows
    loss_mask: torch.Tensor  # (N, L) bool, False on padding
    test_ids: torch.Tensor  # (n_test,) int64, ascending
    train_order: torch.Tensor  # (N - n_test,) int64, the fixed training permutation
    fingerprint: str  # sha256 hex of sequences and loss_mask

    @property
    def block_length(self) -> int:
        return self.sequences.shape[1]

    @property
    def num_available(self) -> int:
        """Training candidates: pool sequences outside the test split."""
        return len(self.train_order)

    def train_ids(self, fraction: float | None = None, num_train: int | None = None
                  ) -> torch.Tensor:
        """The first n ids of the training permutation: n = num_train, or
        max(1, round(fraction * available)), or all of them when neither is given. Nested by
        construction: a smaller training set is a prefix of every larger one."""
        available = self.num_available
        if num_train is None:
            n = available if fraction is None else max(1, round(fraction * available))
        elif num_train > available:
            raise UserError(f"asked for {num_train} training sequences but the corpus has "
                            f"{available} after the test split")
        else:
            n = int(num_train)
        return self.train_order[:n].clone()

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of one sequence with padding dropped (BOS/EOS kept)."""
        ids = [int(i) for i in ids if int(i) != self.pad_id]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def sentence(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of a sequence's first sentence: a leading BOS dropped, cut at the first EOS.

        This is what a grammar check should see for a generated sample.
        """
        ids = [int(i) for i in ids]
        if ids and ids[0] == self.bos_id:
            ids = ids[1:]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode([i for i in ids if i != self.pad_id],
                                     skip_special_tokens=True)

    def canonical(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 copy with every position after the first EOS set to PAD (pad mode).

        A generated sample may put anything after its EOS; this is the form in which it can be
        compared with the pool. Wrap-mode sequences are returned unchanged.
        """
        seqs = sequences.detach().to("cpu", torch.int64).clone()
        if self.config.mode == "wrap" or self.eos_id is None:
            return seqs
        is_eos = seqs == self.eos_id
        is_eos[:, 0] = False  # GPT-2's BOS is the same token as its EOS
        after = (is_eos.cumsum(1) - is_eos.long()) > 0  # strictly after the first EOS
        seqs[after] = self.pad_id
        return seqs

    def index_of(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B,) int64: the pool id of each (B, L) row equal to a pool sequence, else -1.

        Exact match on the whole row; pass ``canonical(samples)`` for generated samples.
        """
        order, sorted_rows = self._sorted_pool
        query = _row_keys(sequences.detach().to("cpu", torch.int64).numpy())
        pos = np.minimum(np.searchsorted(sorted_rows, query), len(sorted_rows) - 1)
        found = sorted_rows[pos] == query
        return torch.from_numpy(np.where(found, order[pos], -1).astype(np.int64))

    @cached_property
    def _sorted_pool(self) -> tuple[np.ndarray, np.ndarray]:
        keys = _row_keys(self.sequences.numpy())
        order = np.argsort(keys, kind="stable")
        return order, keys[order]

    def membership(self, train_ids: Sequence[int] | torch.Tensor) -> dict:
        """What a run saves as ``membership.json``: exact train and test ids into the pool."""
        train = [int(i) for i in train_ids]
        test = set(self.test_ids.tolist())
        assert not test.intersection(train), "training ids overlap the test split"
        return {
            "fingerprint": self.fingerprint,
            "num_sequences": int(self.sequences.shape[0]),
            "block_length": self.block_length,
            "data_config": to_dict(self.config),
            "train_ids": train,
            "test_ids": self.test_ids.tolist(),
        }


def _row_keys(rows: np.ndarray) -> np.ndarray:
    """(N,) opaque keys, one per row of an (N, L) int64 array, equal iff the rows are equal."""
    rows = np.ascontiguousarray(rows, dtype="<i8")
    return rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()


def fingerprint(sequences: torch.Tensor, loss_mask: torch.Tensor) -> str:
    """sha256 (hex) of the pool: sequences as little-endian int64, then the mask as bytes."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(sequences.numpy(), dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(loss_mask.numpy(), dtype=np.uint8).tobytes())
    return h.hexdigest()
