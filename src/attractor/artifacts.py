"""Every file attractor reads back, each through one schema-checked loader.

A loader returns what its writer wrote, checked field by field, or raises a one-line
:class:`Damaged` (a :class:`~attractor.errors.UserError`) that names the file and the field:

    runs/a/membership.json is damaged: train_ids[3] is -1, outside 0..299

    run_config(run_dir)           RUN/config.json -> (TrainConfig, the file's dict)
    membership(run_dir, n)        RUN/membership.json -> Membership (ids in range, disjoint)
    metrics(path)                 RUN/metrics.jsonl -> rows (a torn last line is dropped)
    summary(run_dir)              RUN/summary.json -> dict, or None when absent
    checkpoint_meta(path)         checkpoint/meta.json -> the step
    checkpoint_state(path, step)  checkpoint/state.pt -> {"step", "optimizer"}
    checkpoint_weights(path, w)   checkpoint/{model,ema}.safetensors -> tensors
    probe_result(dir, name)       probes/<name>.json -> dict
    probe_rows(dir, name)         probes/<name>.jsonl -> rows
    probe_examples(dir, name)     probes/<name>_examples.json -> records
    probe_index(dir)              probes/results.json -> dict
    sweep_file(dir)               SWEEP/sweep.json -> SweepConfig, or None when absent
    analysis_file(dir)            SWEEP/analysis/analysis.json -> dict
    cache_entry(entry, cfg)       cache/<key>/ -> (meta, tensors), or None (rebuild it)

The checks are those the readers rely on (types, ranges, shapes, agreement between fields),
so that a file damaged after it was written is refused here and never reaches an index or a
tensor operation. What a checkpoint must fit (the model's and optimiser's own shapes) is
checked by :mod:`attractor.train.checkpoint`, which knows the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attractor.errors import UserError


class Damaged(UserError):
    """A file attractor wrote that no longer holds what its writer wrote."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path} is damaged: {problem}")


def _json(path: Path) -> Any:
    """The JSON value in ``path``; missing, empty, truncated and non-UTF-8 files are Damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not a UTF-8 JSON file (byte {err.start}); damaged") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); it is "
                        "damaged") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shown(v: Any) -> str:
    return repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."


def need(ok: bool, path: Path | str, problem: str) -> None:
    """Raise :class:`Damaged` for ``path`` unless ``ok``."""
    if not ok:
        raise Damaged(path, problem)


def _table(value: Any, path: Path, what: str = "the file") -> dict:
    need(isinstance(value, dict), path, f"{what} holds {_shown(value)}, not a table of fields")
    return value


def _int_field(d: dict, key: str, path: Path, lo: int = 0, optional: bool = False):
    value = d.get(key)
    if value is None and optional:
        return None
    need(key in d, path, f"field {key!r} is missing")
    need(_is_int(value) and value >= lo, path, f"{key} is {_shown(value)}, not a whole number "
         f">= {lo}")
    return value


def _number_field(d: dict, key: str, path: Path, optional: bool = True) -> float | None:
    value = d.get(key)
    if value is None:
        need(optional, path, f"field {key!r} is missing")
        return None
    need(_is_int(value) or isinstance(value, float), path,
         f"{key} is {_shown(value)}, not a number")
    return float(value)


# --------------------------------------------------------------------------- a training run

def run_config(run_dir: str | Path) -> tuple[Any, dict]:
    """RUN/config.json: the training config and the file's other entries."""
    from attractor.config import ConfigError, from_dict
    from attractor.train.config import TrainConfig

    path = Path(run_dir) / "config.json"
    if not path.is_file():
        cut = (Path(run_dir) / "membership.json").exists() or \
            (Path(run_dir) / "tokenizer.json").exists()
        raise UserError(f"{run_dir} is not a run directory (no config.json)" + (
            "; its start was cut short: run the same command without --resume to start it "
            "again" if cut else ""))
    saved = _json(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise UserError(f"{run_dir} is not a run directory ({path} holds no training config)")
    try:
        cfg = from_dict(TrainConfig, saved["train"])
    except ConfigError as err:
        raise UserError(f"{path} holds a damaged training config ({err})") from None
    need(_is_int(saved.get("vocab_size")) and saved["vocab_size"] >= 2, path,
         "it records no vocabulary size")
    _int_field(saved, "num_train", path, lo=1, optional=True)
    _int_field(saved, "pad_id", path, optional=True)
    return cfg, saved


@dataclass(frozen=True)
class Membership:
    """RUN/membership.json: which pool sequences the run trained on and held out."""

    fingerprint: str
    num_sequences: int
    train_ids: list[int]
    test_ids: list[int]


def _ids(d: dict, key: str, path: Path, size: int) -> list[int]:
    ids = d.get(key)
    need(key in d, path, f"field {key!r} is missing")
    need(isinstance(ids, list), path, f"{key} is {_shown(ids)}, not a list of ids")
    for i, v in enumerate(ids):
        need(_is_int(v), path, f"{key}[{i}] is {_shown(v)}, not a whole number")
        need(0 <= v < size, path, f"{key}[{i}] is {v}, outside 0..{size - 1}")
    need(len(set(ids)) == len(ids), path, f"{key} repeats an id")
    return ids


def membership(run_dir: str | Path, pool_size: int | None = None) -> Membership:
    """RUN/membership.json, its ids in range of the pool (``pool_size`` sequences when given,
    else the recorded count), unique, and disjoint between train and test."""
    path = Path(run_dir) / "membership.json"
    d = _table(_json(path), path)
    fp = d.get("fingerprint")
    need(isinstance(fp, str) and fp != "", path, f"fingerprint is {_shown(fp)}, not a hash")
    n = _int_field(d, "num_sequences", path, lo=1)
    need(pool_size is None or n == pool_size, path,
         f"num_sequences is {n}, but the rebuilt data pool has {pool_size}")
    train, test = _ids(d, "train_ids", path, n), _ids(d, "test_ids", path, n)
    need(len(train) >= 1, path, "train_ids is empty")
    both = set(train) & set(test)
    need(not both, path, f"id {min(both) if both else 0} is both a train and a test id")
    return Membership(fp, n, train, test)


def _rows(path: Path, torn_last: bool):
    """(line number, value) of each non-blank line of a JSON-lines file. A last line that does
    not parse is skipped when ``torn_last`` (it was being appended when the process died);
    any other is Damaged."""
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        try:
            value = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            if torn_last and number == len(lines):
                continue
            raise Damaged(path, f"line {number} is not a JSON row") from None
        if raw.strip():
            yield number, value


def metrics(path: str | Path) -> list[dict]:
    """RUN/metrics.jsonl: one row per line, each {"step": k, ...} with numbers or null (a last
    line cut short by a kill is dropped)."""
    path = Path(path)
    rows = []
    for number, row in _rows(path, torn_last=True) if path.is_file() else ():
        _metrics_row(row, path, number)
        rows.append(row)
    return rows


def _metrics_row(row: Any, path: Path, number: int) -> None:
    where = f"line {number}"
    need(isinstance(row, dict), path, f"{where} holds {_shown(row)}, not a metrics row")
    need(_is_int(row.get("step")) and row["step"] >= 0, path,
         f"{where}: step is {_shown(row.get('step'))}, not a step number")
    for key, value in row.items():
        if key not in ("step", "split"):
            need(value is None or _is_int(value) or isinstance(value, float), path,
                 f"{where}: {key} is {_shown(value)}, not a number")
    need(isinstance(row.get("split", ""), str), path, f"{where}: split is not text")


def summary(run_dir: str | Path) -> dict | None:
    """RUN/summary.json (written last by training), or None when the run has none yet."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return None
    d = _table(_json(path), path)
    _int_field(d, "steps", path, lo=1)
    for key in ("final_train_loss", "train_nelbo", "test_nelbo", "test_ppl_bound"):
        _number_field(d, key, path)
    return d


# --------------------------------------------------------------------------- checkpoints

def checkpoint_meta(ckpt_dir: str | Path) -> int:
    """checkpoint/meta.json: the step of a complete checkpoint."""
    path = Path(ckpt_dir) / "meta.json"
    d = _table(_json(path), path)
    step = _int_field(d, "step", path, lo=1)
    need(d.get("complete") is True, path, f"complete is {_shown(d.get('complete'))}, not true")
    return step


def checkpoint_state(ckpt_dir: str | Path, step: int) -> dict:
    """checkpoint/state.pt: {"step": the step of meta.json, "optimizer": a state dict}."""
    import torch

    path = Path(ckpt_dir) / "state.pt"
    d = _table(_binary(path, lambda: torch.load(path, map_location="cpu", weights_only=True)),
               path)
    need(d.get("step") == step and _is_int(d.get("step")), path,
         f"step is {_shown(d.get('step'))}, not the step {step} of meta.json")
    opt = _table(d.get("optimizer"), path, "optimizer")
    need(isinstance(opt.get("state"), dict), path, "optimizer.state is not a table")
    groups = opt.get("param_groups")
    ok = isinstance(groups, list) and all(isinstance(g, dict) and isinstance(g.get("params"),
                                                                            list) for g in groups)
    need(ok, path, "optimizer.param_groups is not a list of parameter groups")
    return d


def checkpoint_weights(ckpt_dir: str | Path, which: str) -> dict:
    """checkpoint/{which}.safetensors: name -> tensor (shapes are checked against the model
    by :func:`attractor.train.checkpoint.check_weights`)."""
    from safetensors.torch import load_file

    file = Path(ckpt_dir) / f"{which}.safetensors"
    return _binary(file, lambda: load_file(str(file)))


def _binary(path: Path, load) -> Any:
    """``load()`` of a checkpoint file, its failures as one line."""
    try:
        return load()
    except FileNotFoundError:
        raise UserError(f"checkpoint file {path} is missing") from None
    except Exception as err:  # noqa: BLE001 - safetensors, pickle, zip and torch errors
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise UserError(f"checkpoint file {path} is corrupt or unreadable ({first})") from None


# --------------------------------------------------------------------------- probes

def probe_result(probes_dir: str | Path, name: str) -> dict:
    """probes/<name>.json: the probe's settings, summary and timing (written last)."""
    path = Path(probes_dir) / f"{name}.json"
    d = _table(_json(path), path)
    need(d.get("probe") == name, path, f"probe is {_shown(d.get('probe'))}, not {name!r}")
    need(isinstance(d.get("config"), dict), path, "config is not a table of settings")
    need(isinstance(d.get("summary"), (list, dict)), path, "summary is missing")
    timing = _table(d.get("timing"), path, "timing")
    for key in ("wall_s", "sequences"):
        _number_field(timing, key, path, optional=False)
    return d


def probe_rows(probes_dir: str | Path, name: str) -> list[dict]:
    """probes/<name>.jsonl: one row per sequence (and level) or sample, each with a split."""
    path = Path(probes_dir) / f"{name}.jsonl"
    if not path.is_file():
        raise UserError(f"{path} is missing")
    rows = []
    for number, row in _rows(path, torn_last=False):
        need(isinstance(row, dict) and isinstance(row.get("split"), str), path,
             f"line {number} holds {_shown(row)}, not a row with a split")
        rows.append(row)
    need(bool(rows), path, "it holds no rows")
    return rows


_EXAMPLE_LISTS = {"original": str, "corrupted": str, "recovered": str, "changed": bool,
                  "correct": bool}


def shard_plan(path: str | Path) -> dict:
    """probes/partial/<name>/plan.json: the fingerprint of an unfinished probe's work."""
    path = Path(path)
    d = _table(_json(path), path)
    need(d.get("kind") == "probe-shards" and isinstance(d.get("fingerprint"), str), path,
         "it is not the plan of a probe's shards")
    return d


def probe_shard(path: str | Path) -> list[dict]:
    """probes/partial/<name>/rank-<r>.jsonl: finished chunks, each {"items": [i, ...],
    "records": [{...}, ...], "wall_s", "forward_s", "forward_calls"} (a last line cut short by a
    kill is dropped)."""
    path = Path(path)
    out = []
    for number, line in _rows(path, torn_last=True):
        ok = (isinstance(line, dict) and isinstance(line.get("items"), list)
              and isinstance(line.get("records"), list)
              and len(line["items"]) == len(line["records"])
              and all(_is_int(i) and i >= 0 for i in line["items"])
              and all(isinstance(r, dict) for r in line["records"]))
        need(ok, path, f"line {number} is not a chunk of items and their records")
        for key in ("wall_s", "forward_s", "forward_calls"):
            _number_field(line, key, path, optional=False)
        out.append(line)
    return out


def probe_examples(probes_dir: str | Path, name: str) -> list[dict]:
    """probes/<name>_examples.json: sequences as token strings with per-position marks."""
    path = Path(probes_dir) / f"{name}_examples.json"
    records = _json(path)
    need(isinstance(records, list), path, f"the file holds {_shown(records)}, not a list")
    for i, r in enumerate(records):
        r = _table(r, path, f"record {i}")
        need(isinstance(r.get("split"), str), path, f"record {i}: split is not text")
        _int_field(r, "id", path)
        _int_field(r, "n_real", path)
        level = _number_field(r, "level", path, optional=False)
        need(math.isfinite(level), path, f"record {i}: level is not finite")
        for key, kind in _EXAMPLE_LISTS.items():
            value = r.get(key)
            need(isinstance(value, list) and len(value) == r["n_real"]
                 and all(isinstance(v, kind) for v in value), path,
                 f"record {i}: {key} is not a list of {r['n_real']} {kind.__name__} values")
    return records


def probe_index(probes_dir: str | Path) -> dict:
    """probes/results.json: {"kind": "probes", "run": ..., "probes": [names]}."""
    path = Path(probes_dir) / "results.json"
    d = _table(_json(path), path)
    need(d.get("kind") == "probes", path, f"kind is {_shown(d.get('kind'))}, not 'probes'")
    return d


# --------------------------------------------------------------------------- sweeps and caches

def results_kind(path: str | Path) -> str:
    """The ``kind`` of a results.json or sweep.json: which renderer draws its directory."""
    path = Path(path)
    d = _json(path)
    if not (isinstance(d, dict) and isinstance(d.get("kind"), str)):
        raise UserError(f"{path} is not a results file of attractor (it records no kind)")
    return d["kind"]


def sweep_file(sweep_dir: str | Path):
    """SWEEP/sweep.json: the sweep's config, or None when there is no such file."""
    from attractor.sweep.config import sweep_config_from_dict

    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        return None
    d = _json(path)
    if not (isinstance(d, dict) and d.get("kind") == "sweep" and "config" in d):
        raise UserError(f"{path} is not a sweep file")
    return sweep_config_from_dict(d["config"])


_ANALYSIS = {"runs": list, "missing": list, "per_size": list, "per_run": list,
             "settings": dict, "transitions": dict, "histograms": dict, "examples": dict,
             "roc": dict, "samples": dict}


def analysis_file(sweep_dir: str | Path) -> dict:
    """SWEEP/analysis/analysis.json, with the entries the sweep report reads."""
    path = Path(sweep_dir) / "analysis" / "analysis.json"
    d = _table(_json(path), path)
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
        meta = _table(_json(entry / "meta.json"), entry / "meta.json")
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
