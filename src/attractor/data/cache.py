"""On-disk cache of built datasets, keyed by a hash of the data config and the corpus files.

A cache entry is a directory ``<cache_dir>/<key>/`` holding ``pool.safetensors`` (sequences,
loss mask, test ids, training permutation), ``tokenizer.json`` and ``meta.json``. It is written
to a temporary directory and renamed into place, so a reader never sees half an entry, and it
is ignored (rebuilt) when its recomputed fingerprint disagrees with the one recorded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import load_file, save_file

from attractor.config import to_dict
from attractor.data.config import DataConfig
from attractor.data.dataset import Dataset, fingerprint
from attractor.data.tokenizer import special_ids
from attractor.io import make_dir, read_json, write_json

_FORMAT = 1


def entry_dir(cfg: DataConfig, cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / f"{cfg.scheme}-{cfg.cache_key()}"


def load_cached(cfg: DataConfig, cache_dir: str | os.PathLike) -> Dataset | None:
    """The cached dataset for ``cfg``, or None if absent, stale or damaged."""
    from tokenizers import Tokenizer

    entry = entry_dir(cfg, cache_dir)
    try:
        meta = read_json(entry / "meta.json")
        tensors = load_file(str(entry / "pool.safetensors"))
        tokenizer = Tokenizer.from_file(str(entry / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - missing, torn or foreign files all mean: rebuild
        return None
    if meta.get("format") != _FORMAT or meta.get("config") != to_dict(cfg):
        return None
    seqs, mask = tensors["sequences"], tensors["loss_mask"]
    if fingerprint(seqs, mask) != meta.get("fingerprint"):
        return None
    ids = special_ids(tokenizer)
    return Dataset(config=cfg, tokenizer=tokenizer,
                   vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
                   pad_id=ids.pad, bos_id=ids.bos, eos_id=ids.eos, sequences=seqs,
                   loss_mask=mask, test_ids=tensors["test_ids"],
                   train_order=tensors["train_order"], fingerprint=meta["fingerprint"])


def save_cached(dataset: Dataset, cache_dir: str | os.PathLike) -> Path:
    """Write ``dataset`` to its cache entry (atomically; an existing entry is left alone)."""
    entry = entry_dir(dataset.config, cache_dir)
    if entry.exists():
        return entry
    make_dir(entry.parent)
    tmp = Path(tempfile.mkdtemp(prefix=entry.name + ".", dir=entry.parent))
    try:
        save_file({"sequences": dataset.sequences.contiguous(),
                   "loss_mask": dataset.loss_mask.contiguous(),
                   "test_ids": dataset.test_ids.contiguous(),
                   "train_order": dataset.train_order.contiguous()},
                  str(tmp / "pool.safetensors"))
        dataset.tokenizer.save(str(tmp / "tokenizer.json"))
        write_json(tmp / "meta.json", {"format": _FORMAT, "config": to_dict(dataset.config),
                                       "fingerprint": dataset.fingerprint})
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not entry.exists():
            raise
    return entry
