"""On-disk cache of built datasets, keyed by a hash of the data config and the corpus files.

A cache entry is a directory ``<cache_dir>/<key>/`` holding ``pool.safetensors`` (sequences,
loss mask, test ids, training permutation), ``tokenizer.json`` and ``meta.json``. It is written
to a temporary directory and renamed into place, so a reader never sees half an entry. An entry
that is stale or damaged in any way (:func:`attractor.artifacts.cache_entry`: unreadable files,
tensors of the wrong type or shape, ids out of range, a fingerprint that its tensors do not
reproduce) is rebuilt and replaced. Writing the cache is best effort: a failure (a full disk)
leaves no temporary directory and the data in memory is used as built.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from attractor import artifacts
from attractor.config import to_dict
from attractor.data.config import DataConfig
from attractor.data.dataset import Dataset, fingerprint
from attractor.data.tokenizer import special_ids
from attractor.errors import UserError
from attractor.io import make_dir, write_json

_FORMAT = 1


def entry_dir(cfg: DataConfig, cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / f"{cfg.scheme}-{cfg.cache_key()}"


def load_cached(cfg: DataConfig, cache_dir: str | os.PathLike) -> Dataset | None:
    """The cached dataset for ``cfg``, or None if absent, stale or damaged."""
    from tokenizers import Tokenizer

    entry = entry_dir(cfg, cache_dir)
    found = artifacts.cache_entry(entry, to_dict(cfg), _FORMAT)
    if found is None:
        return None
    meta, tensors = found
    seqs, mask = tensors["sequences"], tensors["loss_mask"]
    if fingerprint(seqs, mask) != meta["fingerprint"]:
        return None
    try:
        tokenizer = Tokenizer.from_file(str(entry / "tokenizer.json"))
        ids = special_ids(tokenizer)
    except Exception:  # noqa: BLE001 - a torn or foreign tokenizer file: rebuild
        return None
    if int(seqs.max()) >= tokenizer.get_vocab_size(with_added_tokens=True):
        return None
    return Dataset(config=cfg, tokenizer=tokenizer,
                   vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
                   pad_id=ids.pad, bos_id=ids.bos, eos_id=ids.eos, sequences=seqs,
                   loss_mask=mask, test_ids=tensors["test_ids"],
                   train_order=tensors["train_order"], fingerprint=meta["fingerprint"])


def save_cached(dataset: Dataset, cache_dir: str | os.PathLike) -> Path | None:
    """Write ``dataset`` to its cache entry (atomically; an intact entry is left alone, a
    damaged one replaced); returns the entry, or None when it could not be written."""
    entry = entry_dir(dataset.config, cache_dir)
    if entry.exists() and load_cached(dataset.config, cache_dir) is not None:
        return entry
    try:
        make_dir(entry.parent)
        tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".", dir=entry.parent))
    except (OSError, UserError):
        return None
    try:
        save_file({"sequences": dataset.sequences.contiguous(),
                   "loss_mask": dataset.loss_mask.contiguous(),
                   "test_ids": dataset.test_ids.contiguous(),
                   "train_order": dataset.train_order.contiguous()},
                  str(tmp / "pool.safetensors"))
        dataset.tokenizer.save(str(tmp / "tokenizer.json"))
        write_json(tmp / "meta.json", {"format": _FORMAT, "config": to_dict(dataset.config),
                                       "fingerprint": dataset.fingerprint})
        _replace_entry(tmp, entry)
    except Exception:  # noqa: BLE001 - best effort: any failure leaves the data in memory
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    return entry


def _replace_entry(tmp: Path, entry: Path) -> None:
    """Rename ``tmp`` to ``entry``, moving a damaged entry out of the way first."""
    if entry.exists():
        aside = Path(tempfile.mkdtemp(prefix=entry.name + ".damaged.", dir=entry.parent))
        os.replace(entry, aside / "entry")
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(tmp, entry)
    except OSError:
        if not entry.exists():           # another process wrote it meanwhile: keep theirs
            raise
        shutil.rmtree(tmp, ignore_errors=True)
