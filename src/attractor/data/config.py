"""The data configuration: which corpus, tokenizer, sequence length and split."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from attractor.errors import UserError, require

MODES = ("pad", "wrap")


# Bounds that keep a data pool in memory: sequences are held as one (N, L) int64 tensor.
MAX_BLOCK_LENGTH = 65_536
MAX_SYNTHETIC = 10_000_000


@dataclass(frozen=True)
class DataConfig:
    """Everything that determines the sequence pool, the test split and the training order.

    corpus:       "synthetic" | "text:PATH" (file, or directory of .txt) | "hf:NAME" (hub id,
                  or a local parquet/arrow/save_to_disk path)
    tokenizer:    "auto" (word for synthetic, gpt2 otherwise) | "gpt2" | "word" | "bpe:<size>"
    block_length: L, tokens per sequence including BOS and EOS
    mode:         "pad" (one sentence per sequence) | "wrap" (sentences packed into blocks)
    corpus_size:  synthetic: number of distinct sentences; text/hf: most sentences read (0 = all)
    test_size:    held-out test sequences
    seed:         data seed (grammar sampling, test split, training permutation)
    """

    corpus: str = "synthetic"
    tokenizer: str = "auto"
    block_length: int = 32
    mode: str = "pad"
    corpus_size: int = 60000
    test_size: int = 1000
    seed: int = 0
    synthetic_words: int = 0         # synthetic only: words per open class (0 = all 365 words)

    @property
    def scheme(self) -> str:
        return self.corpus.partition(":")[0]

    def validate(self) -> None:
        """Raise :class:`UserError` on values no dataset can be built from."""
        scheme, _, arg = self.corpus.partition(":")
        require(self.corpus == "synthetic" or (scheme in ("text", "hf") and bool(arg)),
                f"unknown corpus {self.corpus!r}; use synthetic, text:PATH or hf:NAME")
        _check_tokenizer(self.tokenizer)
        require(isinstance(self.block_length, int) and self.block_length >= 2,
                f"block length must be at least 2 (BOS and EOS); got {self.block_length}")
        require(self.block_length <= MAX_BLOCK_LENGTH,
                f"block length must be at most {MAX_BLOCK_LENGTH:,}; got {self.block_length}")
        require(self.mode in MODES, f"unknown sequence mode {self.mode!r}; use pad or wrap")
        require(self.mode != "wrap" or self.block_length >= 3,
                f"wrap mode needs block length >= 3 (BOS, a token, EOS); got {self.block_length}")
        require(isinstance(self.test_size, int) and self.test_size >= 1,
                f"test size must be at least 1; got {self.test_size}")
        require(isinstance(self.corpus_size, int) and self.corpus_size >= 0,
                f"corpus size must be >= 0 (0 = all); got {self.corpus_size}")
        require(self.scheme != "synthetic" or self.corpus_size <= MAX_SYNTHETIC,
                f"the synthetic corpus is made in memory: at most {MAX_SYNTHETIC:,} sentences; "
                f"got {self.corpus_size}")
        require(self.scheme != "synthetic" or self.corpus_size > self.test_size,
                f"synthetic corpus size ({self.corpus_size}) must exceed the test size "
                f"({self.test_size})")
        require(isinstance(self.synthetic_words, int) and self.synthetic_words >= 0,
                f"synthetic words per class must be >= 0 (0 = all); got {self.synthetic_words}")
        require(isinstance(self.seed, int) and self.seed >= 0,
                f"data seed must be a non-negative integer; got {self.seed}")

    def resolved_tokenizer(self) -> str:
        """The tokenizer kind that "auto" stands for with this corpus."""
        if self.tokenizer != "auto":
            return self.tokenizer
        return "word" if self.scheme == "synthetic" else "gpt2"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DataConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        require(not unknown, f"unknown data config keys: {sorted(unknown)}")
        return cls(**d)

    def cache_key(self) -> str:
        """Hash of everything that determines the pool, including the corpus files' identity."""
        payload = {**self.to_dict(), "tokenizer": self.resolved_tokenizer(),
                   "source": _source_identity(self.corpus)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _check_tokenizer(kind: str) -> None:
    if kind in ("auto", "gpt2", "word"):
        return
    if kind.startswith("bpe:") and kind[4:].isdigit():
        from attractor.data.tokenizer import MAX_BPE_VOCAB, MIN_BPE_VOCAB

        size = int(kind[4:])
        if not MIN_BPE_VOCAB <= size <= MAX_BPE_VOCAB:
            raise UserError(f"bpe vocabulary size must lie in {MIN_BPE_VOCAB}..{MAX_BPE_VOCAB:,}; "
                            f"got {size}")
        return
    raise UserError(f"unknown tokenizer {kind!r}; use auto, gpt2, word or bpe:<vocab_size>")


def _source_identity(corpus: str) -> list:
    """(path, size, mtime) of local corpus files, so an edited file never hits a stale cache."""
    scheme, _, arg = corpus.partition(":")
    path = Path(arg).expanduser() if scheme in ("text", "hf") else None
    if path is None or not path.exists():
        return []
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
