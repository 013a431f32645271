"""Pad and wrap sequence building, and exact row deduplication, against plain Python."""

from __future__ import annotations

import numpy as np
import pytest

from attractor.data.sequences import pad_sequences, rows_in, unique_rows, wrap_sequences

PAD, BOS, EOS = 0, 1, 2


def _random_lists(rng, n=50, max_len=12):
    return [list(rng.integers(3, 20, size=rng.integers(0, max_len))) for _ in range(n)]


@pytest.mark.parametrize("L", [2, 3, 8, 20])
def test_pad_matches_python(L):
    rng = np.random.default_rng(0)
    lists = _random_lists(rng)
    seqs, mask = pad_sequences(lists, L, PAD, BOS, EOS)
    assert seqs.shape == mask.shape == (len(lists), L) and seqs.dtype == np.int64
    for toks, row, m in zip(lists, seqs, mask):
        full = ([BOS] + toks + [EOS])[:L]
        assert row.tolist() == full + [PAD] * (L - len(full))
        assert m.tolist() == [True] * len(full) + [False] * (L - len(full))
        assert (row[m] != PAD).all() and (row[~m] == PAD).all()


@pytest.mark.parametrize("L", [3, 5, 16])
def test_wrap_matches_python(L):
    rng = np.random.default_rng(1)
    lists = _random_lists(rng)
    stream = [t for toks in lists for t in toks + [EOS]]
    body = L - 2
    expected = [[BOS] + stream[i:i + body] + [EOS] for i in range(0, len(stream) - body + 1, body)]
    seqs, mask = wrap_sequences(lists, L, BOS, EOS)
    assert seqs.tolist() == expected
    assert mask.shape == seqs.shape and mask.all()


def test_unique_rows_and_rows_in():
    rng = np.random.default_rng(2)
    seqs = rng.integers(0, 3, size=(200, 4))
    first = unique_rows(seqs)
    seen, expected = set(), []
    for i, row in enumerate(map(tuple, seqs)):
        if row not in seen:
            seen.add(row)
            expected.append(i)
    assert first.tolist() == expected
    others = rng.integers(0, 3, size=(30, 4))
    inside = {tuple(r) for r in others}
    assert rows_in(seqs, others).tolist() == [tuple(r) in inside for r in seqs]
    assert unique_rows(seqs[:0]).tolist() == [] and not rows_in(seqs, others[:0]).any()
