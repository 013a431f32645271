"""Loaders of a sweep's files and of the data cache."""

from __future__ import annotations

from pathlib import Path

from attractor.artifacts.fields import need, read_json, table
from attractor.errors import UserError


def results_kind(path: str | Path) -> str:
    """The ``kind`` of a results.json or sweep.json: which renderer draws its directory."""
    path = Path(path)
    d = read_json(path)
    if not (isinstance(d, dict) and isinstance(d.get("kind"), str)):
        raise UserError(f"{path} is not a results file of attractor (it records no kind)")
    return d["kind"]


def sweep_file(sweep_dir: str | Path):
    """SWEEP/sweep.json: the sweep's config, or None when there is no such file."""
    from attractor.sweep.config import sweep_config_from_dict

    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        return None
    d = read_json(path)
    if not (isinstance(d, dict) and d.get("kind") == "sweep" and "config" in d):
        raise UserError(f"{path} is not a sweep file")
    return sweep_config_from_dict(d["config"])


_ANALYSIS = {"runs": list, "missing": list, "per_size": list, "per_run": list,
             "settings": dict, "transitions": dict, "histograms": dict, "examples": dict,
             "roc": dict, "samples": dict}


def analysis_file(sweep_dir: str | Path) -> dict:
    """SWEEP/analysis/analysis.json, with the entries the sweep report reads."""
    path = Path(sweep_dir) / "analysis" / "analysis.json"
    d = table(read_json(path), path)
    for key, kind in _ANALYSIS.items():
        need(isinstance(d.get(key), kind), path, f"{key} is not a {kind.__name__}")
    need(all(isinstance(n, str) for n in d["missing"]), path, "missing is not a list of names")
    return d


def cache_entry(entry: str | Path, config: dict, format_version: int):
    """A data-cache entry's (meta, tensors), or None when it is absent, stale or damaged in
    any way (a cache is rebuilt, never trusted)."""
    from safetensors.torch import load_file

    entry = Path(entry)
    try:
        meta = table(read_json(entry / "meta.json"), entry / "meta.json")
        tensors = load_file(str(entry / "pool.safetensors"))
    except Exception:  # noqa: BLE001 - missing, torn or foreign files all mean: rebuild
        return None
    if meta.get("format") != format_version or meta.get("config") != config \
            or not isinstance(meta.get("fingerprint"), str):
        return None
    return (meta, tensors) if _pool_ok(tensors) else None


def _pool_ok(t: dict) -> bool:
    """Whether cached pool tensors have the shapes, types and ranges a pool has."""
    import torch

    seqs, mask, test, order = (t.get(k) for k in ("sequences", "loss_mask", "test_ids",
                                                  "train_order"))
    if not all(isinstance(x, torch.Tensor) and x.numel() for x in (seqs, mask, test, order)):
        return False
    if seqs.dtype != torch.int64 or seqs.dim() != 2 or mask.dtype != torch.bool \
            or mask.shape != seqs.shape or (seqs < 0).any():
        return False
    both = torch.cat([test, order])
    return both.dtype == torch.int64 and test.dim() == order.dim() == 1 and \
        0 <= int(both.min()) and int(both.max()) < len(seqs) and \
        len(torch.unique(both)) == len(both)
