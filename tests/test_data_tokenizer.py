"""Tokenizers: GPT-2 ids against known values, word and trained BPE vocabularies, saving."""

from __future__ import annotations

import pytest

from attractor.data.tokenizer import (
    BOS,
    EOS,
    PAD,
    UNK,
    build_tokenizer,
    corpus_words,
    gpt2_tokenizer,
    load_tokenizer,
    special_ids,
    trained_bpe_tokenizer,
    word_tokenizer,
)
from attractor.errors import UserError


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.mark.parametrize("text, ids", [
    ("Hello world", [15496, 995]),
    (" the", [262]),
    ("<|endoftext|>", [50256]),
    ("The", [464]),
    (",", [11]),
    (".", [13]),
    (" Hello", [18435]),
])
def test_gpt2_known_ids(gpt2, text, ids):
    assert gpt2.encode(text, add_special_tokens=False).ids == ids


def test_gpt2_vocabulary_and_specials(gpt2):
    assert gpt2.get_vocab_size(with_added_tokens=True) == 50258
    assert gpt2.token_to_id(PAD) == 50257
    ids = special_ids(gpt2)
    assert (ids.pad, ids.bos, ids.eos) == (50257, 50256, 50256)


@pytest.mark.parametrize("text", ["Hello world", "  two  spaces\tand tab", "café – naïve 😀 ∑"])
def test_gpt2_round_trip(gpt2, text):
    assert gpt2.decode(gpt2.encode(text).ids) == text


def test_word_tokenizer_ids_and_unknown_words():
    tok = word_tokenizer(["the", "dog", "."])
    assert [tok.token_to_id(t) for t in (PAD, BOS, EOS, UNK)] == [0, 1, 2, 3]
    assert tok.encode("the dog .").ids == [4, 5, 6]
    assert tok.encode("the cat").ids == [4, 3]
    assert tok.decode([4, 5, 6]) == "the dog ."
    assert tok.get_vocab_size(with_added_tokens=True) == 7


def test_corpus_words_frequency_order():
    assert corpus_words(["b a", "a c", "a b"]) == ["a", "b", "c"]


def test_trained_bpe_size_round_trip_and_determinism():
    texts = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(500)]
    tok = trained_bpe_tokenizer(texts, 300)
    assert tok.get_vocab_size(with_added_tokens=True) <= 300
    assert [tok.token_to_id(t) for t in (PAD, BOS, EOS, UNK)] == [0, 1, 2, 3]
    sample = "the lazy fox jumps 42 times, naïvely"
    assert tok.decode(tok.encode(sample).ids) == sample  # byte level: nothing is unknown
    assert len(tok.encode("the quick brown fox").ids) < len("the quick brown fox")  # merges
    assert tok.to_str() == trained_bpe_tokenizer(texts, 300).to_str()


def test_save_and_load(tmp_path, gpt2):
    gpt2.save(str(tmp_path / "tokenizer.json"))
    loaded = load_tokenizer(tmp_path)  # a run directory works too
    assert loaded.encode("Hello world").ids == [15496, 995]
    assert special_ids(loaded).pad == 50257
    with pytest.raises(UserError, match="no tokenizer file"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")


def test_unknown_kind():
    with pytest.raises(UserError, match="unknown tokenizer"):
        build_tokenizer("sentencepiece", ["a"])


def test_bpe_sizes_are_bounded_before_any_work():
    from dataclasses import replace

    from attractor.data import DataConfig
    from attractor.errors import UserError

    for kind in ("bpe:100", "bpe:99999999999"):
        with pytest.raises(UserError, match="bpe vocabulary size"):
            replace(DataConfig(), tokenizer=kind)
    replace(DataConfig(), tokenizer="bpe:300")
