"""Corpus sources: each turns a ``DataConfig.corpus`` string into a list of sentences.

* ``synthetic``: distinct sentences sampled from the built-in grammar (no download);
* ``text:PATH``: a UTF-8 file, one sequence per line (blank lines skipped), or a directory,
  meaning all its ``*.txt`` files in sorted order. Lines end at ``\n`` only (``\r\n`` too):
  a form feed, NEL or U+2028 inside a line is part of its text, not a line break. Only regular
  files are read (``/dev/zero`` or a pipe never ends), and with ``corpus_size`` 0 (everything)
  a file too large for memory is refused before it is read;
* ``hf:NAME``: the ``text`` field of a Hugging Face dataset's train split, from the hub, or
  from a local dump given as a path: a ``save_to_disk`` directory, a parquet/arrow file, or a
  directory of them. LM1B's detokenizer is applied when NAME contains "lm1b".
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attractor.data.config import DataConfig
from attractor.data.detokenize import lm1b_detokenize
from attractor.data.grammar import grammar_for, is_grammatical
from attractor.errors import UserError

# Give up on reaching the requested number of distinct synthetic sentences after this many draws
# per requested sentence (the default grammar needs about 1.02).
_MAX_DRAWS_PER_SENTENCE = 20


def load_sentences(cfg: DataConfig) -> list[str]:
    """The corpus named by ``cfg.corpus``, as a list of non-empty sentences in corpus order."""
    scheme, _, arg = cfg.corpus.partition(":")
    if scheme == "synthetic":
        return synthetic_sentences(cfg.corpus_size, np.random.default_rng([cfg.split_seed, 0]),
                                   cfg.synthetic_words)
    if scheme == "text":
        sentences = text_sentences(arg, cfg.corpus_size)
    elif scheme == "hf":
        sentences = hf_sentences(arg, cfg.corpus_size)
    else:
        raise UserError(f"unknown corpus {cfg.corpus!r}; use synthetic, text:PATH or hf:NAME")
    if not sentences:
        raise UserError(f"corpus {cfg.corpus!r} is empty (no non-blank lines)")
    return sentences


def sentence_checker(cfg: DataConfig) -> Callable[[str], bool] | None:
    """Whether a sentence is valid in the corpus, where the corpus can tell (the synthetic
    grammar); None for corpora of real text."""
    if cfg.scheme != "synthetic":
        return None
    return functools.partial(is_grammatical, words_per_category=cfg.synthetic_words)


def synthetic_sentences(n: int, rng: np.random.Generator, words_per_category: int = 0
                        ) -> list[str]:
    """``n`` distinct grammar sentences, words joined by spaces, in order of first appearance."""
    grammar = grammar_for(words_per_category)
    seen: dict[str, None] = {}
    draws = 0
    while len(seen) < n:
        if draws > _MAX_DRAWS_PER_SENTENCE * n:
            raise UserError(f"the synthetic grammar gave only {len(seen)} distinct sentences "
                            f"in {draws} draws; ask for fewer (corpus_size={n})")
        batch = max(1024, int(1.05 * (n - len(seen))))
        for words in grammar.sample(batch, rng):
            seen.setdefault(" ".join(words), None)
        draws += batch
    return list(seen)[:n]


def _txt_files(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"corpus path {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"corpus directory {path} has no *.txt files")
        return files
    return [path]


# Bytes of memory per byte of text held as sentences, tokens and sequences (a lower bound).
_TEXT_MEMORY_FACTOR = 4


def _lines(path: Path, limit: int) -> list[str]:
    """Non-blank stripped lines of one file, split at ``\n`` only; at most ``limit`` (0 = all)."""
    out: list[str] = []
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):         # binary files split at b"\n" only
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"{path} is not UTF-8 text: invalid byte 0x{raw[err.start]:02x} "
                                f"at byte offset {offset + err.start} (line {number}); "
                                "re-encode it as UTF-8") from None
            offset += len(raw)
            line = line.rstrip("\n").rstrip("\r").strip()
            if line:
                out.append(line)
                if limit and len(out) >= limit:
                    break
    return out


def _check_readable(files: list[Path], limit: int) -> None:
    """Refuse files that are not regular (never end) or too large to hold in memory."""
    from attractor.budget import host_memory, require_fits

    for file in files:
        if not file.is_file():
            raise UserError(f"corpus file {file} is not a regular file (a device or a pipe "
                            "never ends); give a text file")
    if not limit:
        size = sum(f.stat().st_size for f in files)
        require_fits(f"the whole text corpus ({size:,} bytes)", size * _TEXT_MEMORY_FACTOR,
                     host_memory(), "read part of it with --corpus-size N")


def text_sentences(path: str, limit: int = 0) -> list[str]:
    """Non-blank stripped lines of the file(s) at ``path``; at most ``limit`` (0 = all)."""
    if not path:
        raise UserError("text corpus needs a path: text:PATH")
    files = _txt_files(Path(path).expanduser())
    _check_readable(files, limit)
    sentences: list[str] = []
    for file in files:
        sentences.extend(_lines(file, limit - len(sentences) if limit else 0))
        if limit and len(sentences) >= limit:
            return sentences[:limit]
    return sentences


def _import_datasets():
    try:
        import datasets
    except ImportError as err:
        raise UserError("hf: corpora need the datasets library: pip install 'attractor[hf]'"
                        ) from err
    return datasets


def _load_local(datasets, path: Path, split: str = "train"):
    """A local dump: ``save_to_disk`` directory (its ``split``), or parquet/arrow file(s)."""
    markers = ("dataset_info.json", "state.json", "dataset_dict.json")
    if path.is_dir() and any((path / m).exists() for m in markers):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UserError(f"{path} has no split {split!r} (splits: {list(loaded)})")
            return loaded[split]
        return loaded
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix in (".parquet", ".arrow"))
    if not files:
        raise UserError(f"no .parquet or .arrow files under {path}")
    builder = "parquet" if files[0].suffix == ".parquet" else "arrow"
    return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co",
                                  url.port or (443 if url.scheme != "http" else 80)),
                                 timeout=timeout).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def _offline_unless_reachable(datasets):
    """Offline mode (the local cache only) while the hub is unreachable: without it every
    request is retried with back-off, about half a minute before the error."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE or _hub_reachable():
        yield
        return
    flags = [(hub, "HF_HUB_OFFLINE")] + [(datasets.config, n) for n in
                                         ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                                         if hasattr(datasets.config, n)]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for (module, name), value in zip(flags, saved):
            setattr(module, name, value)


def hf_sentences(name: str, limit: int = 0, column: str = "text",
                 split: str = "train") -> list[str]:
    """The ``column`` field of dataset ``name`` (hub id or local path; its ``split``),
    LM1B-detokenized if lm1b."""
    if not name:
        raise UserError("hf corpus needs a dataset name or path: hf:NAME")
    datasets = _import_datasets()
    local = Path(name).expanduser()
    if local.exists():
        try:
            ds = _load_local(datasets, local, split)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - pyarrow/datasets errors on a damaged dump
            first = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise UserError(f"cannot read {local} as a dataset ({type(err).__name__}: {first})"
                            ) from None
    elif os.sep in name and name.startswith((os.sep, ".", "~")):
        raise UserError(f"local dataset path {name} does not exist")
    else:
        try:
            with _offline_unless_reachable(datasets):
                ds = datasets.load_dataset(name, split=split)
        except Exception as err:  # noqa: BLE001 - network, unknown name, script: one message
            first = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise UserError(f"could not load hf dataset {name!r} ({first}); offline, pass a "
                            "local parquet/arrow dump as hf:/path/to/dump") from None
    if column not in ds.column_names:
        raise UserError(f"hf dataset {name!r} has no {column!r} column (columns: "
                        f"{ds.column_names})")
    if limit:
        ds = ds.select(range(min(limit, len(ds))))
    detok = lm1b_detokenize if "lm1b" in name.lower() else (lambda s: s)
    return [t for t in (detok(s.strip()) for s in ds[column] if s) if t]
