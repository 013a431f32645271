"""The analysis of a sweep, from the files its runs wrote: tables and transition estimates.

``analyze_sweep(SWEEP_DIR, settings)`` writes SWEEP_DIR/analysis/:

    analysis.json        per-size rows, transition estimates per series, histograms, examples,
                         samples, and which planned runs are not finished yet
    per_size.csv         one row per run: NELBOs, recovery, entropies, KS, AUROC, copies
    recovery_vs_size.csv Fig. 2: recovery of train/test vs training size, per t
    basins.csv           Figs. 1/9: deterministic recovery vs corrupted fraction, per size

Per-size numbers and their intervals are the probes' own summaries, reported as they are; the
analysis adds what needs several probes or several runs (the KS distance of training and
generated entropies, and the transition estimates, with their own bootstrap). Nothing here loads
a model, and nothing here renders: ``attractor report`` draws the figures from these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attractor.analysis import transition as tr
from attractor.analysis.collect import RunResults, by_group, load_sweep_results
from attractor.config import check, setting, to_dict
from attractor.io import make_dir, write_csv, write_json
from attractor.probes.stats import ks_distance


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


def _closest(entries: list[dict], key: str, target: float) -> dict:
    return min(entries, key=lambda e: abs(e[key] - target))


def per_size_row(run: RunResults, t: float) -> dict:
    """One run's numbers: the probes' summaries at the chosen t, and the KS distance."""
    rec = _closest(run.probes["recovery_stochastic"]["summary"], "t", t)
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
        "spearman_entropy_vs_recovery": rec["spearman_entropy_vs_recovery"],
        "generated_categories": gen["categories"],
    }


def _curve_rows(run: RunResults, probe: str, level: str) -> list[dict]:
    """Recovery of both splits at every level of one recovery probe (figure data)."""
    return [{"model": run.model, "seed": run.seed, "num_train": run.num_train, level: e[level],
             "split": split, **{k: e[split]["recovery"][k] for k in ("mean", "lo", "hi")}}
            for e in run.probes[probe]["summary"] for split in ("train", "test")]


def _transitions(group: list[RunResults], settings: AnalysisSettings,
                 rng: np.random.Generator) -> dict:
    sizes = [r.num_train for r in group]
    t = _closest(group[0].probes["recovery_stochastic"]["summary"], "t", settings.t_main)["t"]
    levels = [min(r.stochastic, key=lambda lv: abs(lv - t)) for r in group]
    recovery = tr.recovery_crossing(
        sizes, [r.stochastic[lv]["train"][0] for r, lv in zip(group, levels)],
        [r.stochastic[lv]["test"][0] for r, lv in zip(group, levels)], settings.recovery_eps,
        rng, settings.bootstrap)
    entropy = tr.entropy_overlap(sizes, [r.entropies["train"] for r in group],
                                 [r.entropies["generated"] for r in group], settings.ks_level,
                                 rng, settings.bootstrap)
    return {f"recovery_t{t:g}": recovery.to_dict(), "entropy_only": entropy.to_dict(),
            "agreement": tr.agreement(recovery, entropy)}


def _histograms(groups: dict[str, list[RunResults]]) -> dict:
    """Sequence-entropy histograms of training vs generated sequences (Figs. 4/15-17) on shared
    edges per series, and the token entropies of recovered vs unrecovered tokens as the
    stochastic probe binned them (Figs. 3B/12-14)."""
    out = {}
    for name, group in groups.items():
        top = max(max(r.entropies["train"].max(), r.entropies["generated"].max()) for r in group)
        edges = np.linspace(0.0, max(top, 1e-6) * 1.02, 41)
        out[name] = {"edges": edges.tolist(), "runs": {
            str(r.num_train): {
                k: np.histogram(r.entropies[k], bins=edges)[0].tolist()
                for k in ("train", "generated")}
            | {"token_entropy_by_recovery": r.probes["recovery_stochastic"]["histograms"]}
            for r in group}}
    return out


def analyze_sweep(sweep_dir: str | Path, settings: AnalysisSettings = AnalysisSettings(),
                  planned: list[str] | None = None, seed: int = 0) -> dict:
    """Compute and write the analysis of ``sweep_dir`` (see the module docstring).

    ``planned`` names the runs the sweep should have, so that the missing ones are listed.
    """
    sweep_dir = Path(sweep_dir)
    runs = load_sweep_results(sweep_dir)
    rng = np.random.default_rng(seed)
    groups = by_group(runs)
    analysis = {
        "settings": to_dict(settings),
        "runs": [r.name for r in runs],
        "missing": sorted(set(planned or []) - {r.name for r in runs}),
        "per_size": [per_size_row(r, settings.t_main) for r in runs],
        "transitions": {name: _transitions(g, settings, rng) for name, g in groups.items()
                        if len(g) > 1},
        "histograms": _histograms(groups),
        "examples": {r.name: r.examples for g in groups.values() for r in (g[0], g[-1])},
        "samples": {r.name: r.samples for r in runs},
    }
    out = make_dir(sweep_dir / "analysis")
    write_csv(out / "per_size.csv", [_flat(row) for row in analysis["per_size"]])
    write_csv(out / "recovery_vs_size.csv",
              [row for r in runs for row in _curve_rows(r, "recovery_stochastic", "t")])
    write_csv(out / "basins.csv",
              [row for r in runs for row in _curve_rows(r, "recovery_deterministic", "fraction")])
    write_json(out / "analysis.json", analysis)        # last: its presence means complete
    return analysis


def _flat(row: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out
