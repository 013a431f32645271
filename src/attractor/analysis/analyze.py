"""Turn the probe files of a sweep into the tables behind every figure of the report.

``analyze_sweep(SWEEP_DIR)`` writes SWEEP_DIR/analysis/:
    analysis.json           everything below plus transition estimates and settings
    recovery_vs_size.csv    Fig. 2: recovery of train/test vs training size, per t and model
    basins.csv              Figs. 1/9: deterministic recovery vs corrupted fraction, per size
    entropy_vs_size.csv     Fig. 5: mean token entropy of train and generated, and the gap
    per_size.csv            one row per run: NELBOs, recovery, entropy, KS, AUROC, copies
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from attractor.analysis import transition as tr
from attractor.analysis.collect import RunResults, by_model, load_sweep_results
from attractor.errors import require
from attractor.io import write_csv, write_json
from attractor.probes.stats import bootstrap_ci


@dataclass(frozen=True)
class AnalysisSettings:
    t_main: float = 0.25          # noise level of the recovery transition (paper: 0.25 and 0.5)
    eps: float = 0.05             # train and test recovery "meet" within eps
    ks_level: float = 0.3         # distributions "overlap again" below this KS distance
    bootstrap: int = 1000
    seed: int = 0


def _ci(values: np.ndarray, rng, n: int) -> dict:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": None, "lo": None, "hi": None, "n": 0}
    est, lo, hi = bootstrap_ci(values, n=n, generator=rng)
    return {"mean": float(est), "lo": float(lo), "hi": float(hi), "n": int(len(values))}


def _closest_level(levels, t: float) -> float:
    return min(levels, key=lambda lv: abs(lv - t))


def _recovery_rows(run: RunResults) -> list[dict]:
    rows = []
    for entry in run.stochastic_summary:
        for split in ("train", "test"):
            rec = entry[split]["recovery"]
            rows.append({"model": run.model, "num_train": run.num_train, "t": entry["t"],
                         "split": split, "mean": rec["mean"], "lo": rec["lo"], "hi": rec["hi"]})
    return rows


def _basin_rows(run: RunResults) -> list[dict]:
    rows = []
    for entry in run.deterministic_summary:
        for split in ("train", "test"):
            rec = entry[split]["recovery"]
            rows.append({"model": run.model, "num_train": run.num_train,
                         "fraction": entry["fraction"], "split": split, "mean": rec["mean"],
                         "lo": rec["lo"], "hi": rec["hi"]})
    return rows


def _per_size(run: RunResults, t: float, rng, n_boot: int) -> dict:
    level = _closest_level(run.stochastic, t)
    rec = run.stochastic[level]
    train_h, gen_h = run.entropy_rows["train"], run.generated["sequence_entropy"]
    train_tok, gen_tok = run.entropy_token_mean["train"], run.generated["token_mean"]
    pooled_rec = np.concatenate([rec[s][0] for s in ("train", "test") if s in rec])
    pooled_h = np.concatenate([rec[s][1] for s in ("train", "test") if s in rec])
    cats = run.generate_summary.get("categories", {})
    membership = tr.auroc_with_ci(run.entropy_rows["train"], run.entropy_rows["test"], rng,
                                  n_boot)
    gap = bootstrap_gap(gen_tok, train_tok, rng, n_boot)
    return {
        "model": run.model, "num_train": run.num_train, "t": level,
        "train_nelbo": run.train_nelbo, "test_nelbo": run.test_nelbo,
        "train_recovery": _ci(rec["train"][0], rng, n_boot),
        "test_recovery": _ci(rec["test"][0], rng, n_boot),
        "train_token_entropy": _ci(train_tok, rng, n_boot),
        "test_token_entropy": _ci(run.entropy_token_mean["test"], rng, n_boot),
        "generated_token_entropy": _ci(gen_tok, rng, n_boot),
        "entropy_gap": gap,
        "train_sequence_entropy_mean": float(train_h.mean()),
        "generated_sequence_entropy_mean": float(gen_h.mean()),
        "ks_train_vs_generated": tr.ks_distance(train_h, gen_h),
        "membership_auroc": membership,
        "spearman_entropy_vs_recovery": tr.spearman(pooled_h, pooled_rec),
        "generated_categories": cats,
    }


def bootstrap_gap(generated: np.ndarray, train: np.ndarray, rng, n_boot: int) -> dict:
    """Mean token entropy of generated minus training sequences, percentile bootstrap CI."""
    point = float(generated.mean() - train.mean())
    reps = [rng.choice(generated, len(generated)).mean() - rng.choice(train, len(train)).mean()
            for _ in range(n_boot)]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return {"mean": point, "lo": float(lo), "hi": float(hi)}


def _transitions(runs: list[RunResults], settings: AnalysisSettings, rng) -> dict:
    sizes = [r.num_train for r in runs]
    out = {}
    for t in sorted({settings.t_main, 0.5}):
        levels = [_closest_level(r.stochastic, t) for r in runs]
        est = tr.recovery_crossing(sizes, [r.stochastic[lv]["train"][0] for r, lv in zip(runs, levels)],
                                   [r.stochastic[lv]["test"][0] for r, lv in zip(runs, levels)],
                                   settings.eps, rng, settings.bootstrap)
        out[f"recovery_t{levels[0]:g}"] = est.to_dict()
    ent = tr.entropy_overlap(sizes, [r.entropy_rows["train"] for r in runs],
                             [r.generated["sequence_entropy"] for r in runs], settings.ks_level,
                             rng, settings.bootstrap)
    out["entropy_only"] = ent.to_dict()
    main = tr.Estimate(**out[f"recovery_t{_closest_level(runs[0].stochastic, settings.t_main):g}"])
    out["agreement"] = tr.agreement(main, ent)
    return out


def analyze_sweep(sweep_dir: str | Path, settings: AnalysisSettings | None = None) -> dict:
    """Compute and write the analysis of ``sweep_dir`` (see the module docstring)."""
    settings = settings or AnalysisSettings()
    sweep_dir = Path(sweep_dir)
    runs = load_sweep_results(sweep_dir)
    require(len(runs) > 0, f"{sweep_dir} has no finished runs with probes: nothing to analyse")
    rng = np.random.default_rng(settings.seed)
    out_dir = sweep_dir / "analysis"
    out_dir.mkdir(exist_ok=True)
    per_size, recovery, basins, models = [], [], [], {}
    for model, group in by_model(runs).items():
        rows = [_per_size(r, settings.t_main, rng, settings.bootstrap) for r in group]
        per_size += rows
        recovery += [row for r in group for row in _recovery_rows(r)]
        basins += [row for r in group for row in _basin_rows(r)]
        models[model] = {"sizes": [r.num_train for r in group],
                         "transitions": _transitions(group, settings, rng) if len(group) > 1
                         else None}
    analysis = {"settings": asdict(settings), "models": models, "per_size": per_size,
                "histograms": _histograms(runs), "examples": _examples(runs),
                "samples": {r.name: r.samples for r in runs}}
    write_json(out_dir / "analysis.json", analysis)
    write_csv(out_dir / "recovery_vs_size.csv", recovery)
    write_csv(out_dir / "basins.csv", basins)
    write_csv(out_dir / "per_size.csv", [_flat(row) for row in per_size])
    write_csv(out_dir / "entropy_vs_size.csv", [
        {"model": r["model"], "num_train": r["num_train"],
         **{f"{k}_{q}": r[k][q] for k in ("train_token_entropy", "generated_token_entropy",
                                          "entropy_gap") for q in ("mean", "lo", "hi")}}
        for r in per_size])
    return analysis


def _flat(row: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _hist(values: np.ndarray, edges: np.ndarray) -> list[int]:
    return np.histogram(values, bins=edges)[0].tolist()


def _histograms(runs: list[RunResults]) -> dict:
    """Sequence-entropy histograms (Figs. 4/15-17) on shared edges per model, and the token
    entropy of recovered vs unrecovered tokens (Figs. 3B/12-14) as the probes binned them."""
    out = {}
    for model, group in by_model(runs).items():
        top = max(max(r.entropy_rows["train"].max(), r.generated["sequence_entropy"].max())
                  for r in group)
        edges = np.linspace(0.0, max(top, 1e-6) * 1.02, 41)
        out[model] = {"edges": edges.tolist(), "runs": {
            str(r.num_train): {"train": _hist(r.entropy_rows["train"], edges),
                               "generated": _hist(r.generated["sequence_entropy"], edges),
                               "token_entropy_by_recovery": r.token_entropy_hist}
            for r in group}}
    return out


def _examples(runs: list[RunResults]) -> dict:
    """Recovery examples of the smallest and the largest training size of each model."""
    out = {}
    for model, group in by_model(runs).items():
        for r in {group[0].name: group[0], group[-1].name: group[-1]}.values():
            out[r.name] = r.examples
    return out
