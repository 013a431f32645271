"""Gather what the analysis needs from the probe files of every run of a sweep.

A run counts once every registered probe has written its JSON. From each run the analysis takes
the probes' own summaries (their numbers and intervals are reported as they are) and the
per-sequence rows that the transition estimates resample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attractor import artifacts
from attractor.errors import UserError, require
from attractor.probes.registry import PROBES


@dataclass
class RunResults:
    """Everything the analysis uses from one run (model, size, seed) of a sweep."""

    name: str
    model: str                   # the series: the model config, prefixed by a non-uniform family
    num_train: int
    seed: int
    train_nelbo: float | None
    test_nelbo: float | None
    probes: dict = field(default_factory=dict)          # probe name -> its saved JSON
    # Exp. 2 rows: level t -> split -> (recovery (n,), sequence entropy at the start (n,))
    stochastic: dict = field(default_factory=dict)
    # generate probe: group ("train", "test", "generated") -> (n,) sequence entropy at t -> 0
    entropies: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)           # the same groups -> (n,) real tokens
    # entropy probe: split -> score -> (n,) membership score (higher = member)
    scores: dict = field(default_factory=dict)
    token_entropy: dict = field(default_factory=dict)    # split -> (n,) nats per token
    samples: list = field(default_factory=list)          # a few generated texts
    examples: dict = field(default_factory=dict)         # probe -> {level_name, records}

    @property
    def group(self) -> str:
        """The series this run belongs to: runs of one model and seed, over training sizes."""
        return f"{self.model} seed {self.seed}"


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
    rows = artifacts.probe_rows(path.parent, path.stem)
    found = {r["split"] for r in rows}
    require(rows and set(splits) <= found,
            f"{path} is damaged or incomplete; delete it and its .json, then run the probe again")
    return rows


def is_probed(run_dir: Path) -> bool:
    """Whether every registered probe has written its results for ``run_dir``."""
    return all((run_dir / "probes" / f"{name}.json").is_file() for name in PROBES)


def load_run_results(run_dir: Path) -> RunResults | None:
    """The records of one run, or None if its probes are not all there yet."""
    if not is_probed(run_dir):
        return None
    try:
        return _load_run_results(run_dir, run_dir / "probes")
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"the results of {run_dir} are damaged ({type(err).__name__}: {err}); "
                        f"delete {run_dir / 'probes'} to probe the run again") from None


def _load_run_results(run_dir: Path, probes: Path) -> RunResults:
    _, config = artifacts.run_config(run_dir)
    summary = artifacts.summary(run_dir) or {}
    family = config["train"].get("family", "uniform")
    label = config["train"]["model_name"] if family == "uniform" else \
        f"{family} {config['train']['model_name']}"
    res = RunResults(name=run_dir.name, model=label,
                     num_train=int(config["num_train"]), seed=int(config["train"]["seed"]),
                     train_nelbo=summary.get("train_nelbo"), test_nelbo=summary.get("test_nelbo"))
    res.probes = {name: artifacts.probe_result(probes, name) for name in PROBES}
    res.stochastic = _by_level(_probe_rows(probes / "recovery_stochastic.jsonl"), "t")
    gen_rows = _probe_rows(probes / "generate.jsonl", splits=("train", "generated"))
    for r in gen_rows:
        res.entropies.setdefault(r["split"], []).append(r["sequence_entropy"])
        res.tokens.setdefault(r["split"], []).append(r["n_real"])
    res.entropies = {k: np.array(v, dtype=float) for k, v in res.entropies.items()}
    res.tokens = {k: np.array(v, dtype=float) for k, v in res.tokens.items()}
    _membership(res, _probe_rows(probes / "entropy.jsonl"),
                res.probes["entropy"]["config"]["entropy_times"][0])
    res.samples = [{k: r.get(k) for k in ("text", "category", "distance", "compared",
                                          "sequence_entropy")}
                   for r in gen_rows if r["split"] == "generated"][:8]
    for name in PROBES:
        path = probes / f"{name}_examples.json"
        if path.is_file():
            res.examples[name] = {"level_name": res.probes[name].get("level_name", "level"),
                                  "records": artifacts.probe_examples(probes, name)}
    return res


def _membership(res: RunResults, rows: list[dict], t: float) -> None:
    """Per split: the membership scores and token entropies of the entropy probe at time t."""
    from attractor.probes.entropy import membership_scores

    for split in ("train", "test"):
        sel = [r for r in rows if r["split"] == split and r["t"] == t]
        columns = {"token_entropy": np.array([[r["mean_token_entropy"]] for r in sel]),
                   **{k: np.array([r[k] for r in sel], dtype=float)
                      for k in ("nelbo", "n_real", "min_k_logprob", "zlib_bits")}}
        res.scores[split] = membership_scores(columns)
        res.token_entropy[split] = columns["token_entropy"][:, 0]


def load_sweep_results(sweep_dir: Path) -> list[RunResults]:
    """Every run of the sweep whose probes are complete, sorted by (model, seed, size)."""
    runs = []
    for run_dir in sorted((Path(sweep_dir) / "runs").glob("*")):
        if run_dir.is_dir():
            loaded = load_run_results(run_dir)
            if loaded is not None:
                runs.append(loaded)
    return sorted(runs, key=lambda r: (r.model, r.seed, r.num_train))
