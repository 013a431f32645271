"""The analysis of a sweep, from the files its runs wrote: tables and transition estimates.

``analyze_sweep(SWEEP_DIR, settings)`` writes SWEEP_DIR/analysis/:

    analysis.json        per-size rows pooled over seeds, per-run rows, transition estimates
                         per model (with their threshold curves), histograms, examples, samples,
                         and which planned runs are not finished yet
    per_size.csv         the pooled rows, flattened
    per_run.csv          one row per run: the probes' own numbers (intervals over sequences)
    recovery_vs_size.csv Fig. 2: recovery of train/test vs training size, per t, per run
    basins.csv           Figs. 1/9: deterministic recovery vs corrupted fraction, per run

Per-run numbers and their intervals are the probes' own summaries, reported as they are. The
pooled rows and the transition estimates resample training seeds and sequences
(:mod:`attractor.analysis.pooled`, :mod:`attractor.analysis.transition`). Nothing here loads a
model, and nothing here renders: ``attractor report`` draws the figures from these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attractor.analysis import transition as tr
from attractor.analysis.collect import RunResults, load_sweep_results
from attractor.analysis.pooled import closest, closest_entry, covers, size_row
from attractor.config import check, setting, to_dict
from attractor.io import make_dir, write_csv, write_json
from attractor.probes.stats import hierarchical, ks_distance, seed_mean


@dataclass(frozen=True)
class AnalysisSettings:
    """How a sweep's transition is estimated."""

    t_main: float = setting(0.25, help="noise level t of the recovery-based transition")
    recovery_eps: float = setting(0.05, help="train and test recovery meet once their gap is "
                                  "at most this")
    ks_level: float = setting(0.3, help="the entropy distributions of training and generated "
                              "sequences overlap again below this KS distance")
    bootstrap: int = setting(1000, help="bootstrap resamples of the 95% intervals")

    def __post_init__(self) -> None:
        check(0.0 < self.t_main <= 1.0, "t_main", "must lie in (0, 1]")
        check(0.0 < self.recovery_eps < 1.0, "recovery_eps", "must lie in (0, 1)")
        check(0.0 < self.ks_level < 1.0, "ks_level", "must lie in (0, 1)")
        check(self.bootstrap >= 10, "bootstrap", "needs at least 10 resamples")


def run_row(run: RunResults, t: float) -> dict:
    """One run's numbers: the probes' summaries at the chosen t (intervals over sequences)."""
    rec = closest_entry(run.probes["recovery_stochastic"]["summary"], t)
    ent = run.probes["entropy"]["summary"][0]
    gen = run.probes["generate"]["summary"]
    return {
        "name": run.name, "model": run.model, "num_train": run.num_train, "seed": run.seed,
        "t": rec["t"], "train_nelbo": run.train_nelbo, "test_nelbo": run.test_nelbo,
        "train_recovery": rec["train"]["recovery"], "test_recovery": rec["test"]["recovery"],
        "train_token_entropy": ent["train_token"], "test_token_entropy": ent["test_token"],
        "generated_token_entropy": gen["token_entropy"]["generated"],
        "token_entropy_gap": gen["token_entropy_gap"],
        "ks_train_vs_generated": ks_distance(run.entropies["train"], run.entropies["generated"]),
        "membership_auroc": ent["membership_auroc"],
        "generated_categories": gen["categories"],
    }


def _grid(runs: list[RunResults]) -> tuple[list[int], list[list[RunResults]]]:
    """The sizes that every seed of a model has finished, and its runs as [seed][size]."""
    by_seed: dict[int, dict[int, RunResults]] = {}
    for r in runs:
        by_seed.setdefault(r.seed, {})[r.num_train] = r
    sizes = sorted(set.intersection(*(set(d) for d in by_seed.values())))
    return sizes, [[d[n] for n in sizes] for _, d in sorted(by_seed.items())]


def transitions(runs: list[RunResults], settings: AnalysisSettings,
                rng: np.random.Generator) -> dict | None:
    """Both transition estimates of one model, over the sizes all its seeds have finished."""
    sizes, grid = _grid(runs)
    if len(sizes) < 2:
        return None
    t = closest(grid[0][0].stochastic, settings.t_main)
    n, what = settings.bootstrap, covers(len(grid))
    gap_cells = [[(r.stochastic[closest(r.stochastic, t)]["train"][0],
                   r.stochastic[closest(r.stochastic, t)]["test"][0]) for r in row]
                 for row in grid]
    ks_cells = [[(r.entropies["train"], r.entropies["generated"]) for r in row] for row in grid]

    def gap(a, b):
        return float(a.mean() - b.mean())

    recovery = tr.recovery_estimates(sizes, seed_mean(gap, gap_cells),
                                     hierarchical(gap, gap_cells, n, rng),
                                     settings.recovery_eps, what)
    entropy = tr.entropy_estimates(sizes, seed_mean(ks_distance, ks_cells),
                                   hierarchical(ks_distance, ks_cells, n, rng),
                                   settings.ks_level, what)
    return {"sizes": sizes, "seeds": [row[0].seed for row in grid], "t": t,
            "recovery": recovery, "entropy_only": entropy,
            "agreement": tr.agreement(recovery, entropy)}


def _histograms(runs: list[RunResults]) -> dict:
    """Per model and seed: sequence-entropy histograms of training vs generated sequences
    (Figs. 4/15-17) on shared edges, and the token entropies of recovered vs unrecovered
    tokens as the stochastic probe binned them (Figs. 3B/12-14)."""
    out: dict = {}
    for r in runs:
        out.setdefault(f"{r.model} seed {r.seed}", []).append(r)
    for name, group in out.items():
        top = max(max(r.entropies["train"].max(), r.entropies["generated"].max()) for r in group)
        edges = np.linspace(0.0, max(top, 1e-6) * 1.02, 41)
        out[name] = {"edges": edges.tolist(), "runs": {
            str(r.num_train): {
                k: np.histogram(r.entropies[k], bins=edges)[0].tolist()
                for k in ("train", "generated")}
            | {"token_entropy_by_recovery": r.probes["recovery_stochastic"]["histograms"]}
            for r in group}}
    return out


def _curve_rows(run: RunResults, probe: str, level: str) -> list[dict]:
    """Recovery of both splits at every level of one recovery probe (figure data)."""
    return [{"model": run.model, "seed": run.seed, "num_train": run.num_train, level: e[level],
             "split": split, **{k: e[split]["recovery"][k] for k in ("mean", "lo", "hi")},
             "unigram": e[split].get("unigram_recovery", {}).get("mean")}
            for e in run.probes[probe]["summary"] for split in ("train", "test")]


def analyze_sweep(sweep_dir: str | Path, settings: AnalysisSettings = AnalysisSettings(),
                  planned: list[str] | None = None, seed: int = 0) -> dict:
    """Compute and write the analysis of ``sweep_dir`` (see the module docstring).

    ``planned`` names the runs the sweep should have, so that the missing ones are listed.
    """
    sweep_dir = Path(sweep_dir)
    runs = load_sweep_results(sweep_dir)
    rng = np.random.default_rng(seed)
    models: dict[str, list[RunResults]] = {}
    for r in runs:
        models.setdefault(r.model, []).append(r)
    cells: dict[tuple, list[RunResults]] = {}
    for r in runs:
        cells.setdefault((r.model, r.num_train), []).append(r)
    analysis = {
        "settings": to_dict(settings),
        "runs": [r.name for r in runs],
        "missing": sorted(set(planned or []) - {r.name for r in runs}),
        "per_size": [size_row(group, settings.t_main, rng, settings.bootstrap)
                     for _, group in sorted(cells.items())],
        "per_run": [run_row(r, settings.t_main) for r in runs],
        "transitions": {m: t for m, group in models.items()
                        if (t := transitions(group, settings, rng)) is not None},
        "histograms": _histograms(runs),
        "examples": {r.name: r.examples for g in models.values() for r in (g[0], g[-1])},
        "roc": {r.name: r.probes["entropy"]["membership"]["scores"]
                for g in models.values() for r in (g[0], g[-1])},
        "samples": {r.name: r.samples for r in runs},
    }
    _write(sweep_dir, runs, analysis)
    return analysis


def _write(sweep_dir: Path, runs: list[RunResults], analysis: dict) -> None:
    out = make_dir(sweep_dir / "analysis")
    write_csv(out / "per_size.csv", [_flat(row) for row in analysis["per_size"]])
    write_csv(out / "per_run.csv", [_flat(row) for row in analysis["per_run"]])
    write_csv(out / "recovery_vs_size.csv",
              [row for r in runs for row in _curve_rows(r, "recovery_stochastic", "t")])
    write_csv(out / "basins.csv",
              [row for r in runs for row in _curve_rows(r, "recovery_deterministic", "fraction")])
    write_json(out / "analysis.json", analysis)        # last: its presence means complete


def _flat(row: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out
