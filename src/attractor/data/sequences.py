"""From token lists to fixed-length sequences, and exact deduplication of sequences.

Notation: L = block length, N = number of sequences. A sequence is a row of an (N, L) int64
array; its loss mask is an (N, L) bool array, False where the position is padding.

* pad mode (one sentence per sequence, MDLM's ``wrap=False``):
      [BOS] t_1 ... t_n [EOS] [PAD] ... [PAD], truncated to L when longer;
* wrap mode (Duo's ``lm1b-gpt2``, D3PM's sentence packing): sentences with EOS appended are
  concatenated and cut into chunks of L - 2 tokens, each wrapped as [BOS] chunk [EOS]; the
  remainder is dropped and no position is padding.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def _flatten(token_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated tokens (T,) int64 and per-list lengths (n,) int64."""
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    flat = np.fromiter(itertools.chain.from_iterable(token_lists), dtype=np.int64,
                       count=int(lengths.sum()))
    return flat, lengths


def pad_sequences(token_lists: Sequence[Sequence[int]], block_length: int, pad: int, bos: int,
                  eos: int) -> tuple[np.ndarray, np.ndarray]:
    """One sequence per token list: (N, L) int64 sequences and (N, L) bool loss mask."""
    n, L = len(token_lists), block_length
    flat, lengths = _flatten(token_lists)
    seqs = np.full((n, L), pad, dtype=np.int64)
    seqs[:, 0] = bos
    # scatter the body of list i to columns 1 .. len_i (those below L)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.cumsum(lengths) - lengths
    cols = 1 + np.arange(len(flat)) - np.repeat(starts, lengths)
    keep = cols < L
    seqs[rows[keep], cols[keep]] = flat[keep]
    eos_col = 1 + lengths
    has_eos = eos_col < L
    seqs[np.arange(n)[has_eos], eos_col[has_eos]] = eos
    mask = np.arange(L)[None, :] < np.minimum(lengths + 2, L)[:, None]
    return seqs, mask


def wrap_sequences(token_lists: Sequence[Sequence[int]], block_length: int, bos: int,
                   eos: int) -> tuple[np.ndarray, np.ndarray]:
    """Packed sequences: (N, L) int64 with N = floor(sum(len_i + 1) / (L - 2)), all-True mask."""
    body = block_length - 2
    flat, lengths = _flatten(token_lists)
    # insert EOS after each list: position of list i's tokens shifts by i
    stream = np.full(len(flat) + len(lengths), eos, dtype=np.int64)
    offsets = np.repeat(np.arange(len(lengths)), lengths)
    stream[np.arange(len(flat)) + offsets] = flat
    n = len(stream) // body
    chunks = stream[: n * body].reshape(n, body)  # (N, L - 2)
    seqs = np.concatenate([np.full((n, 1), bos), chunks, np.full((n, 1), eos)], axis=1)
    return seqs.astype(np.int64), np.ones_like(seqs, dtype=bool)


def unique_rows(seqs: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of (N, L) ``seqs``, ascending."""
    if len(seqs) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.ascontiguousarray(seqs).view(np.dtype((np.void, seqs.dtype.itemsize * seqs.shape[1])))
    _, first = np.unique(rows.ravel(), return_index=True)
    return np.sort(first).astype(np.int64)


def rows_in(seqs: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each row of ``seqs`` equals some row of ``others`` (same width)."""
    if len(seqs) == 0 or len(others) == 0:
        return np.zeros(len(seqs), dtype=bool)
    width = np.dtype((np.void, seqs.dtype.itemsize * seqs.shape[1]))
    a = np.ascontiguousarray(seqs, dtype=np.int64).view(width).ravel()
    b = np.ascontiguousarray(others, dtype=np.int64).view(width).ravel()
    return np.isin(a, b)
