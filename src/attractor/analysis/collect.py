"""Gather the probe outputs of every run of a sweep into plain per-run records."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attractor.errors import UserError, require
from attractor.io import read_json, read_jsonl


@dataclass
class RunResults:
    """Everything the analysis uses from one run (model, size) of a sweep."""

    name: str
    model: str
    num_train: int
    vocab_size: int
    train_nelbo: float | None
    test_nelbo: float | None
    # Exp. 2 rows: level t -> split -> (recovery (n,), sequence entropy at the start (n,))
    stochastic: dict = field(default_factory=dict)
    stochastic_summary: list = field(default_factory=list)
    deterministic_summary: list = field(default_factory=list)
    token_entropy_hist: dict = field(default_factory=dict)   # t -> {recovered, unrecovered}
    entropy_rows: dict = field(default_factory=dict)         # split -> (n,) sequence entropy
    entropy_token_mean: dict = field(default_factory=dict)   # split -> (n,) nats per token
    generated: dict = field(default_factory=dict)            # sequence entropy, per token, ...
    generate_summary: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)              # a few generated texts
    examples: dict = field(default_factory=dict)             # probe name -> example records


def _by_level(rows: list[dict], level_key: str) -> dict:
    out: dict = {}
    for r in rows:
        if r.get("recovery") is None:          # nothing was corrupted: recovery undefined
            continue
        per = out.setdefault(float(r[level_key]), {}).setdefault(r["split"], ([], []))
        per[0].append(float(r["recovery"]))
        h = r.get("sequence_entropy")
        per[1].append(math.nan if h is None else float(h))
    return {lv: {s: (np.array(a), np.array(b)) for s, (a, b) in d.items()} for lv, d in out.items()}


def _probe_rows(path: Path, splits: tuple[str, ...] = ("train", "test")) -> list[dict]:
    """The per-sequence rows of a probe, refusing a damaged file rather than failing later."""
    rows = [r for r in read_jsonl(path) if isinstance(r, dict)] if path.is_file() else []
    found = {r.get("split") for r in rows}
    require(rows and set(splits) <= found,
            f"{path} is damaged or incomplete; delete it and its .json, then run the probe again")
    return rows


def load_run_results(run_dir: Path) -> RunResults | None:
    """The records of one run, or None if its probes are not all there yet."""
    probes = run_dir / "probes"
    needed = ["recovery_stochastic", "recovery_deterministic", "entropy", "generate"]
    if not all((probes / f"{n}.json").is_file() for n in needed):
        return None
    try:
        return _load_run_results(run_dir, probes)
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, UserError):
            raise
        raise UserError(f"the results of {run_dir} are damaged ({type(err).__name__}: {err}); "
                        f"delete {probes} to probe the run again") from None


def _load_run_results(run_dir: Path, probes: Path) -> RunResults:
    config = read_json(run_dir / "config.json")
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    stoch = read_json(probes / "recovery_stochastic.json")
    res = RunResults(name=run_dir.name, model=config["train"]["model_name"],
                     num_train=int(config["num_train"]), vocab_size=int(config["vocab_size"]),
                     train_nelbo=summary.get("train_nelbo"), test_nelbo=summary.get("test_nelbo"))
    res.stochastic = _by_level(_probe_rows(probes / "recovery_stochastic.jsonl"), "t")
    res.stochastic_summary = stoch["summary"]
    res.token_entropy_hist = stoch.get("histograms", {})
    res.deterministic_summary = read_json(probes / "recovery_deterministic.json")["summary"]
    for r in _probe_rows(probes / "entropy.jsonl"):
        res.entropy_rows.setdefault(r["split"], []).append(r["sequence_entropy"])
        res.entropy_token_mean.setdefault(r["split"], []).append(
            r["mean_token_entropy_normalised"] * math.log(res.vocab_size))
    res.entropy_rows = {k: np.array(v) for k, v in res.entropy_rows.items()}
    res.entropy_token_mean = {k: np.array(v) for k, v in res.entropy_token_mean.items()}
    gen_rows = _probe_rows(probes / "generate.jsonl", splits=())
    res.generated = {
        "sequence_entropy": np.array([r["sequence_entropy"] for r in gen_rows]),
        "token_mean": np.array([r["sequence_entropy"] / max(r["n_real"], 1) for r in gen_rows]),
        "category": [r.get("category") for r in gen_rows],
    }
    res.generate_summary = read_json(probes / "generate.json")["summary"]
    res.samples = [{k: r.get(k) for k in ("text", "category", "distance", "compared",
                                          "sequence_entropy")} for r in gen_rows[:8]]
    for name in ("recovery_stochastic", "recovery_deterministic"):
        path = probes / f"{name}_examples.json"
        if path.is_file():
            res.examples[name] = read_json(path)
    return res


def load_sweep_results(sweep_dir: Path) -> list[RunResults]:
    """Every run of the sweep whose probes are complete, sorted by (model, size)."""
    runs = []
    for run_dir in sorted((Path(sweep_dir) / "runs").glob("*")):
        if run_dir.is_dir():
            loaded = load_run_results(run_dir)
            if loaded is not None:
                runs.append(loaded)
    return sorted(runs, key=lambda r: (r.model, r.num_train))


def by_model(runs: list[RunResults]) -> dict[str, list[RunResults]]:
    out: dict[str, list[RunResults]] = {}
    for r in runs:
        out.setdefault(r.model, []).append(r)
    return out
