"""Corpora, tokenizers, fixed-length sequences and exact train/test membership.

    from attractor.data import DataConfig, build_dataset

    data = build_dataset(DataConfig(corpus="synthetic", block_length=32))
    train = data.train_ids(fraction=0.01)        # nested: a prefix of data.train_order
    x0 = data.sequences[train]                   # (n, L) int64
    json = data.membership(train)                # saved with the run

The synthetic corpus's grammar (for telling valid novel samples from garbage) is
:mod:`attractor.data.grammar`: ``default_grammar()``, ``is_grammatical(sentence)``,
``log_prob(sentence)``; ``Dataset.sentence(ids)`` turns a generated sequence into the sentence
they expect.
"""

from attractor.data.build import build_dataset
from attractor.data.config import DataConfig
from attractor.data.dataset import Dataset
from attractor.data.tokenizer import load_tokenizer

__all__ = ["DataConfig", "Dataset", "build_dataset", "load_tokenizer"]
