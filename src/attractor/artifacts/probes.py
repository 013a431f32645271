"""Loaders of a probe's files: results, rows, examples, the index and unfinished shards."""

from __future__ import annotations

import math
from pathlib import Path

from attractor.artifacts.fields import (
    int_field,
    is_int,
    jsonl_rows,
    need,
    number_field,
    read_json,
    shown,
    table,
)
from attractor.errors import UserError


def probe_result(probes_dir: str | Path, name: str) -> dict:
    """probes/<name>.json: the probe's settings, summary and timing (written last)."""
    path = Path(probes_dir) / f"{name}.json"
    d = table(read_json(path), path)
    need(d.get("probe") == name, path, f"probe is {shown(d.get('probe'))}, not {name!r}")
    need(isinstance(d.get("config"), dict), path, "config is not a table of settings")
    need(isinstance(d.get("summary"), (list, dict)), path, "summary is missing")
    timing = table(d.get("timing"), path, "timing")
    for key in ("wall_s", "sequences"):
        number_field(timing, key, path, optional=False)
    return d


def probe_rows(probes_dir: str | Path, name: str) -> list[dict]:
    """probes/<name>.jsonl: one row per sequence (and level) or sample, each with a split."""
    path = Path(probes_dir) / f"{name}.jsonl"
    if not path.is_file():
        raise UserError(f"{path} is missing")
    rows = []
    for number, row in jsonl_rows(path, torn_last=False):
        need(isinstance(row, dict) and isinstance(row.get("split"), str), path,
             f"line {number} holds {shown(row)}, not a row with a split")
        rows.append(row)
    need(bool(rows), path, "it holds no rows")
    return rows


_EXAMPLE_LISTS = {"original": str, "corrupted": str, "recovered": str, "changed": bool,
                  "correct": bool}


def shard_plan(path: str | Path) -> dict:
    """probes/partial/<name>/plan.json: the fingerprint of an unfinished probe's work."""
    path = Path(path)
    d = table(read_json(path), path)
    need(d.get("kind") == "probe-shards" and isinstance(d.get("fingerprint"), str), path,
         "it is not the plan of a probe's shards")
    return d


def probe_shard(path: str | Path) -> list[dict]:
    """probes/partial/<name>/rank-<r>.jsonl: finished chunks, each {"items": [i, ...],
    "records": [{...}, ...], "wall_s", "forward_s", "forward_calls"} (a last line cut short by a
    kill is dropped)."""
    path = Path(path)
    out = []
    for number, line in jsonl_rows(path, torn_last=True):
        ok = (isinstance(line, dict) and isinstance(line.get("items"), list)
              and isinstance(line.get("records"), list)
              and len(line["items"]) == len(line["records"])
              and all(is_int(i) and i >= 0 for i in line["items"])
              and all(isinstance(r, dict) for r in line["records"]))
        need(ok, path, f"line {number} is not a chunk of items and their records")
        for key in ("wall_s", "forward_s", "forward_calls"):
            number_field(line, key, path, optional=False)
        out.append(line)
    return out


def probe_examples(probes_dir: str | Path, name: str) -> list[dict]:
    """probes/<name>_examples.json: sequences as token strings with per-position marks."""
    path = Path(probes_dir) / f"{name}_examples.json"
    records = read_json(path)
    need(isinstance(records, list), path, f"the file holds {shown(records)}, not a list")
    for i, r in enumerate(records):
        r = table(r, path, f"record {i}")
        need(isinstance(r.get("split"), str), path, f"record {i}: split is not text")
        int_field(r, "id", path)
        int_field(r, "n_real", path)
        level = number_field(r, "level", path, optional=False)
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
    d = table(read_json(path), path)
    need(d.get("kind") == "probes", path, f"kind is {shown(d.get('kind'))}, not 'probes'")
    return d
