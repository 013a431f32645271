"""Datasets: exact membership (nested fractions, disjoint splits), determinism, caching."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from attractor.config import from_dict, override, to_dict
from attractor.data import DataConfig, build_dataset
from attractor.data.grammar import is_grammatical
from attractor.errors import UserError

SMALL = DataConfig(corpus_size=3000, test_size=200, block_length=32, split_seed=5)


@pytest.fixture(scope="module")
def pad_data():
    return build_dataset(SMALL)


@pytest.fixture(scope="module")
def wrap_data():
    return build_dataset(DataConfig(corpus_size=3000, test_size=100, block_length=24,
                                    mode="wrap", split_seed=5))


def _rows(t: torch.Tensor) -> set[tuple]:
    return {tuple(r) for r in t.tolist()}


@pytest.mark.parametrize("name", ["pad_data", "wrap_data"])
def test_pool_is_distinct_and_split_is_disjoint(name, request):
    data = request.getfixturevalue(name)
    n = data.sequences.shape[0]
    assert data.sequences.dtype == torch.int64 and data.loss_mask.dtype == torch.bool
    assert len(_rows(data.sequences)) == n  # deduplicated on the final token sequence
    test, train = data.test_ids.tolist(), data.train_order.tolist()
    assert sorted(test + train) == list(range(n))  # a partition of the pool
    assert len(test) == data.config.test_size
    assert not _rows(data.sequences[data.test_ids]) & _rows(data.sequences[data.train_order])
    assert (data.sequences[:, 0] == data.bos_id).all()


def test_pad_mode_masks_only_padding(pad_data):
    seqs, mask = pad_data.sequences, pad_data.loss_mask
    assert torch.equal(mask, seqs != pad_data.pad_id)
    lengths = mask.sum(1)
    rows = torch.arange(len(seqs))
    assert (seqs[rows, lengths - 1] == pad_data.eos_id).float().mean() > 0.99  # EOS unless cut
    for ids in seqs[:50]:
        sentence = pad_data.sentence(ids)
        assert is_grammatical(sentence)
        assert pad_data.decode(ids) == f"[BOS] {sentence} [EOS]"


def test_wrap_mode_packs_sentences(wrap_data):
    assert wrap_data.loss_mask.all()
    assert (wrap_data.sequences[:, -1] == wrap_data.eos_id).all()
    assert wrap_data.sequences.shape[1] == 24
    # sentence separators inside the body: packed, not one sentence per row
    assert ((wrap_data.sequences[:, 1:-1] == wrap_data.eos_id).sum(1) >= 1).float().mean() > 0.9


def test_fractions_are_nested_prefixes(pad_data):
    available = pad_data.num_available
    assert available == 2800
    previous: set[int] = set()
    for f in (1e-4, 0.01, 0.1, 0.5, 1.0):
        ids = pad_data.train_ids(fraction=f)
        assert len(ids) == max(1, round(f * available))
        assert previous <= set(ids.tolist())
        assert torch.equal(ids, pad_data.train_order[: len(ids)])
        previous = set(ids.tolist())
    assert torch.equal(pad_data.train_ids(num_train=32), pad_data.train_order[:32])
    assert previous.isdisjoint(pad_data.test_ids.tolist())


def test_train_ids_bad_input(pad_data):
    assert torch.equal(pad_data.train_ids(), pad_data.train_order)     # neither: all of them
    with pytest.raises(UserError, match="asked for 5000 training sequences but the corpus has "
                                        "2800 after"):
        pad_data.train_ids(num_train=5000)
    from attractor.train.config import TrainConfig

    for changes, message in (({"fraction": 0.0}, "in \\(0, 1\\]"), ({"fraction": math.nan}, "in"),
                             ({"num_train": 0}, "at least 1"),
                             ({"fraction": 0.5, "num_train": 3}, "cannot both")):
        with pytest.raises(UserError, match=message):
            TrainConfig(**changes)


def test_determinism_and_seed_dependence(pad_data):
    again = build_dataset(SMALL)
    assert again.fingerprint == pad_data.fingerprint
    assert torch.equal(again.test_ids, pad_data.test_ids)
    assert torch.equal(again.train_order, pad_data.train_order)
    other = build_dataset(DataConfig(corpus_size=3000, test_size=200, split_seed=6))
    assert other.fingerprint != pad_data.fingerprint


def test_membership_record(pad_data):
    train = pad_data.train_ids(num_train=10)
    record = json.loads(json.dumps(pad_data.membership(train)))
    assert record["fingerprint"] == pad_data.fingerprint
    assert record["num_sequences"] == len(pad_data.sequences)
    assert record["block_length"] == 32
    assert record["train_ids"] == train.tolist()
    assert record["test_ids"] == pad_data.test_ids.tolist()
    assert from_dict(DataConfig, record["data_config"]) == SMALL


def test_determinism_across_processes_with_trained_bpe(tmp_path):
    # Hash randomisation and the Rust trainer's internals must not change the pool.
    cfg = DataConfig(corpus_size=1500, test_size=50, tokenizer="bpe:400", block_length=24)
    code = ("from attractor.data import DataConfig, build_dataset;"
            f"print(build_dataset(DataConfig(**{to_dict(cfg)!r})).fingerprint)")
    here = build_dataset(cfg)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, check=True)
    assert out.stdout.strip() == here.fingerprint
    assert here.vocab_size <= 400


def test_cache_round_trip_and_damage(tmp_path):
    cfg = DataConfig(corpus_size=800, test_size=50, block_length=16)
    built = build_dataset(cfg, cache_dir=tmp_path)
    (entry,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    loaded = build_dataset(cfg, cache_dir=tmp_path)
    assert loaded.fingerprint == built.fingerprint
    assert torch.equal(loaded.sequences, built.sequences)
    assert torch.equal(loaded.train_order, built.train_order)
    assert loaded.tokenizer.to_str() == built.tokenizer.to_str()
    (entry / "pool.safetensors").write_bytes(b"damaged")
    assert build_dataset(cfg, cache_dir=tmp_path).fingerprint == built.fingerprint


def test_default_config_gives_sixty_thousand_distinct_sequences():
    data = build_dataset(DataConfig())
    assert data.sequences.shape == (60000, 32)
    assert data.vocab_size == data.tokenizer.get_vocab_size(with_added_tokens=True)
    assert data.num_available == 59000


@pytest.mark.parametrize("changes, message", [
    ({"block_length": 1}, "block_length must be at least 2"),
    ({"block_length": 2, "mode": "wrap"}, "block_length must be at least 3 in wrap mode"),
    ({"mode": "stream"}, "mode is 'stream'"),
    ({"tokenizer": "bpe:x"}, "tokenizer is 'bpe:x'"),
    ({"corpus": "csv:foo"}, "corpus is 'csv:foo'"),
    ({"corpus": "text:"}, "corpus is 'text:'"),
    ({"test_size": 0}, "test_size must be at least 1"),
    ({"corpus_size": 100, "test_size": 100}, "must exceed test_size"),
])
def test_config_validation(changes, message):
    with pytest.raises(UserError, match=message):
        override(SMALL, changes)


def test_too_few_distinct_sequences_for_the_test_split():
    # L = 2 keeps only [BOS] and the first word: a few dozen distinct sequences.
    with pytest.raises(UserError, match="distinct sequences, not more than the test size 100"):
        build_dataset(DataConfig(corpus_size=300, test_size=100, block_length=2))


def test_index_of_and_canonical_samples(pad_data, wrap_data):
    ids = torch.tensor([5, 0, 17])
    assert pad_data.index_of(pad_data.sequences[ids]).tolist() == ids.tolist()
    sample = pad_data.sequences[ids].clone()
    ends = pad_data.loss_mask[ids].sum(1)  # first pad position, after the EOS
    sample[torch.arange(3), torch.minimum(ends, torch.tensor(31))] = 7  # junk after EOS
    assert pad_data.index_of(sample).tolist() == [-1, -1, -1]
    assert pad_data.index_of(pad_data.canonical(sample)).tolist() == ids.tolist()
    novel = pad_data.sequences[:1].clone()
    novel[0, 1] = pad_data.pad_id
    assert pad_data.index_of(novel).tolist() == [-1]
    assert torch.equal(wrap_data.canonical(wrap_data.sequences[:4]), wrap_data.sequences[:4])
    assert wrap_data.index_of(wrap_data.sequences[wrap_data.test_ids[:3]]).tolist() == \
        wrap_data.test_ids[:3].tolist()
