"""Building a :class:`~attractor.data.dataset.Dataset` from a :class:`DataConfig`.

corpus -> sentences -> tokenizer -> token ids -> sequences (pad or wrap) -> dedup -> split.
The split uses its own random stream, ``default_rng([seed, 1])`` (the grammar uses
``[seed, 0]``), so it never depends on how many numbers sentence sampling consumed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer
from tqdm import tqdm

from attractor.budget import check_pool
from attractor.data.cache import load_cached, save_cached
from attractor.data.config import DataConfig
from attractor.data.corpus import load_sentences
from attractor.data.dataset import Dataset, fingerprint
from attractor.data.grammar import grammar_for
from attractor.data.sequences import pad_sequences, rows_in, unique_rows, wrap_sequences
from attractor.data.tokenizer import build_tokenizer, encode_text, special_ids
from attractor.errors import UserError

_ENCODE_CHUNK = 50_000  # sentences per encode_batch call (progress bar granularity)


def encode(tokenizer: Tokenizer, sentences: Sequence[str]) -> list[list[int]]:
    """Token ids of each sentence, without special tokens, encoded in batches."""
    out: list[list[int]] = []
    chunks = range(0, len(sentences), _ENCODE_CHUNK)
    for start in tqdm(chunks, desc="tokenising", unit="chunk", disable=len(chunks) < 4,
                      leave=False):
        # special-token strings in the text stay text; encode_batch_fast (tokenizers >= 0.20)
        # skips the character offsets we never use
        out.extend(encode_text(tokenizer, sentences[start:start + _ENCODE_CHUNK]))
    return out


def _tokenizer_for(cfg: DataConfig, sentences: list[str]) -> Tokenizer:
    kind = cfg.resolved_tokenizer()
    words = (sorted(grammar_for(cfg.synthetic_words).vocabulary) if cfg.scheme == "synthetic"
             else None)
    return build_tokenizer(kind, sentences, words)


def _pad_split(tokens: list[list[int]], cfg: DataConfig, ids, rng: np.random.Generator):
    """Pad mode: dedup sequences, then a seeded test sample and training permutation."""
    seqs, mask = pad_sequences(tokens, cfg.block_length, ids.pad, ids.bos, ids.eos)
    keep = unique_rows(seqs)
    seqs, mask = seqs[keep], mask[keep]
    _require_room(len(seqs), cfg)
    perm = rng.permutation(len(seqs))
    return seqs, mask, np.sort(perm[: cfg.test_size]), perm[cfg.test_size:]


def _wrap_split(tokens: list[list[int]], cfg: DataConfig, ids, rng: np.random.Generator):
    """Wrap mode: split sentences first, pack each side, dedup chunks within and across sides."""
    body = cfg.block_length - 2
    perm = rng.permutation(len(tokens))
    cum = np.cumsum(np.array([len(tokens[i]) + 1 for i in perm]))
    margin = 1.05
    while True:  # take test sentences until they give test_size distinct chunks
        k = int(np.searchsorted(cum, margin * cfg.test_size * body + body)) + 1
        if k >= len(tokens):
            raise UserError(f"the corpus is too small for {cfg.test_size} test sequences of "
                            f"length {cfg.block_length} in wrap mode; lower the test size")
        test, _ = wrap_sequences([tokens[i] for i in np.sort(perm[:k])], cfg.block_length,
                                 ids.bos, ids.eos)
        test = test[unique_rows(test)]
        if len(test) >= cfg.test_size:
            break
        margin *= 1.5
    test = test[: cfg.test_size]
    train, _ = wrap_sequences([tokens[i] for i in np.sort(perm[k:])], cfg.block_length,
                              ids.bos, ids.eos)
    train = train[unique_rows(train)]
    train = train[~rows_in(train, test)]
    _require_room(len(train) + len(test), cfg)
    seqs = np.concatenate([train, test])
    test_ids = np.arange(len(train), len(seqs))
    return seqs, np.ones_like(seqs, dtype=bool), test_ids, rng.permutation(len(train))


def _require_room(n_pool: int, cfg: DataConfig) -> None:
    if n_pool <= cfg.test_size:
        raise UserError(f"the corpus gives only {n_pool} distinct sequences, not more than the "
                        f"test size {cfg.test_size}; lower the test size or add data")


def build_dataset(cfg: DataConfig, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """Build (or load from ``cache_dir``) the pool, split and permutation for ``cfg``.

    Deterministic: the same config gives the same pool, split, permutation and fingerprint.
    """
    if cache_dir is not None:
        cached = load_cached(cfg, cache_dir)
        if cached is not None:
            return cached
    if cfg.scheme == "synthetic":       # its size is known before it is sampled
        check_pool(cfg.corpus_size, cfg.block_length, cfg.corpus)
    sentences = load_sentences(cfg)
    check_pool(len(sentences), cfg.block_length, cfg.corpus)
    if cfg.mode == "wrap":
        sentences = list(dict.fromkeys(sentences))  # a sentence must not land on both sides
    tokenizer = _tokenizer_for(cfg, sentences)
    ids = special_ids(tokenizer)
    tokens = encode(tokenizer, sentences)
    split = _wrap_split if cfg.mode == "wrap" else _pad_split
    rng = np.random.default_rng([cfg.split_seed, 1])
    seqs, mask, test_ids, train_order = split(tokens, cfg, ids, rng)
    sequences, loss_mask = torch.from_numpy(seqs), torch.from_numpy(mask)
    dataset = Dataset(
        config=cfg, tokenizer=tokenizer,
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        pad_id=ids.pad, bos_id=ids.bos, eos_id=ids.eos,
        sequences=sequences, loss_mask=loss_mask,
        test_ids=torch.as_tensor(test_ids, dtype=torch.int64),
        train_order=torch.as_tensor(train_order, dtype=torch.int64),
        fingerprint=fingerprint(sequences, loss_mask))
    if cache_dir is not None:
        save_cached(dataset, cache_dir)
    return dataset
