"""The data configuration: which corpus, tokenizer, sequence length and split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from attractor.config import check, setting, to_dict

MODES = ("pad", "wrap")


# Bounds that keep a data pool in memory: sequences are held as one (N, L) int64 tensor.
MAX_BLOCK_LENGTH = 65_536
MAX_SYNTHETIC = 10_000_000
# Trained BPE: at least the 256 byte symbols and the four special tokens.
MIN_BPE_VOCAB = 256 + 4
MAX_BPE_VOCAB = 1_000_000


@dataclass(frozen=True)
class DataConfig:
    """Everything that determines the sequence pool, the test split and the training order."""

    RENAMED: ClassVar[dict] = {"seed": "split_seed"}     # saved by earlier versions

    corpus: str = setting("synthetic", help="synthetic | text:PATH (a file, or a directory of "
                          ".txt) | hf:NAME (a local parquet/arrow/save_to_disk path, or a hub id)")
    tokenizer: str = setting("auto", help="auto (word for synthetic, else gpt2) | gpt2 | word | "
                             "bpe:N (trained on the corpus)")
    block_length: int = setting(32, help="sequence length L, BOS and EOS included")
    mode: str = setting("pad", help="pad (one sentence per sequence) | wrap (sentences packed)")
    corpus_size: int = setting(60000, help="synthetic: distinct sentences; text/hf: the most "
                               "sentences read (0: all)")
    test_size: int = setting(1000, help="held-out test sequences")
    split_seed: int = setting(0, help="seed of the synthetic corpus, the test split and the "
                              "training permutation")
    synthetic_words: int = setting(0, help="synthetic corpus: the most frequent words kept per "
                                   "open class (0: all 365 words)")

    @property
    def scheme(self) -> str:
        return self.corpus.partition(":")[0]

    def __post_init__(self) -> None:
        scheme, _, arg = self.corpus.partition(":")
        check(self.corpus == "synthetic" or (scheme in ("text", "hf") and bool(arg)), "corpus",
              f"is {self.corpus!r}; use synthetic, text:PATH or hf:NAME")
        _check_tokenizer(self.tokenizer)
        check(self.block_length >= 2, "block_length", f"must be at least 2 (BOS and EOS); got "
              f"{self.block_length}")
        check(self.block_length <= MAX_BLOCK_LENGTH, "block_length",
              f"must be at most {MAX_BLOCK_LENGTH:,}; got {self.block_length}")
        check(self.mode in MODES, "mode", f"is {self.mode!r}; use pad or wrap")
        check(self.mode != "wrap" or self.block_length >= 3, "block_length",
              f"must be at least 3 in wrap mode (BOS, a token, EOS); got {self.block_length}")
        check(self.test_size >= 1, "test_size", f"must be at least 1; got {self.test_size}")
        check(self.corpus_size >= 0, "corpus_size", f"must be >= 0 (0: all); got "
              f"{self.corpus_size}")
        if self.scheme == "synthetic":
            check(self.corpus_size <= MAX_SYNTHETIC, "corpus_size",
                  f"must be at most {MAX_SYNTHETIC:,} (the synthetic corpus is made in memory); "
                  f"got {self.corpus_size}")
            check(self.corpus_size > self.test_size, "corpus_size",
                  f"({self.corpus_size}) must exceed test_size ({self.test_size})")
        check(self.synthetic_words >= 0, "synthetic_words",
              f"must be >= 0 (0: all); got {self.synthetic_words}")
        check(self.split_seed >= 0, "split_seed", f"must be >= 0; got {self.split_seed}")

    def resolved_tokenizer(self) -> str:
        """The tokenizer kind that "auto" stands for with this corpus."""
        if self.tokenizer != "auto":
            return self.tokenizer
        return "word" if self.scheme == "synthetic" else "gpt2"

    def cache_key(self) -> str:
        """Hash of everything that determines the pool, including the corpus files' identity."""
        payload = {**to_dict(self), "tokenizer": self.resolved_tokenizer(),
                   "source": _source_identity(self.corpus)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_tokenizer(kind: str) -> None:
    if kind in ("auto", "gpt2", "word"):
        return
    check(kind.startswith("bpe:") and kind[4:].isdigit(), "tokenizer",
          f"is {kind!r}; use auto, gpt2, word or bpe:<vocab_size>")
    size = int(kind[4:])
    check(MIN_BPE_VOCAB <= size <= MAX_BPE_VOCAB, "tokenizer",
          f"bpe vocabulary size must lie in {MIN_BPE_VOCAB}..{MAX_BPE_VOCAB:,}; got {size}")


def _source_identity(corpus: str) -> list:
    """(path, size, mtime) of local corpus files, so an edited file never hits a stale cache."""
    scheme, _, arg = corpus.partition(":")
    path = Path(arg).expanduser() if scheme in ("text", "hf") else None
    if path is None or not path.exists():
        return []
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
