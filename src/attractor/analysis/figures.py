"""The paper's figures, drawn from ``analysis/analysis.json`` and the CSV files beside it.

Each function returns PNG bytes; a series is one model and seed over training sizes.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from attractor.report.plotting import (
    GENERATED_COLOR,
    TEST_COLOR,
    TRAIN_COLOR,
    legend,
    png,
    pyplot,
)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _num(x) -> float:
    return float(x) if x not in (None, "", "None") else math.nan


def _series(row: dict) -> str:
    return f"{row['model']} seed {row['seed']}"


def recovery_vs_size(analysis_dir: Path) -> bytes:
    """Fig. 2: train (solid) and test (dashed) recovery vs training size, per t and model."""
    plt = pyplot()
    rows = _read_csv(analysis_dir / "recovery_vs_size.csv")
    times = sorted({_num(r["t"]) for r in rows})
    shown = [t for t in times if any(abs(t - x) < 1e-9 for x in (0.1, 0.25, 0.5))] or times[:3]
    models = sorted({_series(r) for r in rows})
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
    for ax, t in zip(axes[0], shown):
        for mi, model in enumerate(models):
            for split, color, style in (("train", TRAIN_COLOR, "-"), ("test", TEST_COLOR, "--")):
                sel = [r for r in rows if _series(r) == model and r["split"] == split
                       and abs(_num(r["t"]) - t) < 1e-9]
                n = np.array([_num(r["num_train"]) for r in sel])
                m, lo, hi = (np.array([_num(r[k]) for r in sel]) for k in ("mean", "lo", "hi"))
                ax.plot(n, m, style, color=color, marker="o", ms=3, alpha=max(0.3, 1 - 0.3 * mi),
                        label=f"{model} {split}")
                ax.fill_between(n, lo, hi, color=color, alpha=0.15)
                if split == "test" and any(r.get("unigram") not in (None, "") for r in sel):
                    ax.plot(n, [_num(r.get("unigram")) for r in sel], ":", color="grey",
                            label=f"{model} unigram denoiser")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("training sequences")
        ax.set_ylabel("token recovery rate (eq. 12)")
    legend(axes[0][0], fontsize=7)
    return png(fig)


def basins(analysis_dir: Path) -> bytes:
    """Figs. 1/9: deterministic recovery vs fraction of corrupted tokens, one curve per size."""
    plt = pyplot()
    rows = _read_csv(analysis_dir / "basins.csv")
    models = sorted({_series(r) for r in rows})
    fig, axes = plt.subplots(1, 2 * len(models), figsize=(4.0 * 2 * len(models), 3.3),
                             squeeze=False)
    for mi, model in enumerate(models):
        sizes = sorted({int(_num(r["num_train"])) for r in rows if _series(r) == model})
        cmap = plt.get_cmap("viridis")
        for si, split in enumerate(("train", "test")):
            ax = axes[0][2 * mi + si]
            for k, n in enumerate(sizes):
                sel = [r for r in rows if _series(r) == model and r["split"] == split
                       and int(_num(r["num_train"])) == n]
                ax.plot([_num(r["fraction"]) for r in sel], [_num(r["mean"]) for r in sel],
                        marker="o", ms=3, color=cmap(k / max(len(sizes) - 1, 1)), label=f"n={n}")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{model}: {split} sequences")
            ax.set_xlabel("fraction of corrupted tokens")
            ax.set_ylabel("recovery (greedy dynamics)")
        legend(axes[0][2 * mi], fontsize=6)
    return png(fig)


def _grid(plt, n: int, width: float = 2.6):
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def sequence_entropy_histograms(analysis: dict, model: str) -> bytes:
    """Figs. 4/15-17: sequence conditional entropy of train vs generated, per training size."""
    plt = pyplot()
    h = analysis["histograms"][model]
    edges = np.array(h["edges"])
    sizes = sorted(h["runs"], key=int)
    fig, axes = _grid(plt, len(sizes))
    for ax, n in zip(axes, sizes):
        for key, color in (("train", TRAIN_COLOR), ("generated", GENERATED_COLOR)):
            counts = np.array(h["runs"][n][key], dtype=float)
            dens = counts / max(counts.sum(), 1)
            ax.stairs(dens, edges, color=color, fill=True, alpha=0.35, label=key)
        ax.set_title(f"{model}, n = {n}", fontsize=8)
        ax.set_xlabel("sequence entropy (nats)", fontsize=7)
    legend(axes[0], fontsize=7)
    fig.tight_layout()
    return png(fig)


def token_entropy_by_recovery(analysis: dict, model: str, t: float) -> bytes:
    """Figs. 3B/12-14: entropy of recovered vs unrecovered tokens at noise level t."""
    plt = pyplot()
    runs = analysis["histograms"][model]["runs"]
    sizes = sorted(runs, key=int)
    fig, axes = _grid(plt, len(sizes))
    for ax, n in zip(axes, sizes):
        hists = runs[n]["token_entropy_by_recovery"]
        key = min(hists, key=lambda k: abs(float(k) - t)) if hists else None
        for split, fill in (("train", True), ("test", False)):
            entry = hists.get(key, {}).get(split) if key else None
            for kind, color in (("recovered", TRAIN_COLOR), ("unrecovered", TEST_COLOR)):
                counts = np.array(entry[kind], dtype=float) if entry else np.zeros(0)
                if counts.sum() > 0:
                    ax.stairs(counts / counts.sum(), np.array(entry["edges"]), color=color,
                              fill=fill, alpha=0.35 if fill else 0.9, label=f"{split} {kind}")
        ax.set_title(f"{model}, n = {n}", fontsize=8)
        ax.set_xlabel("token entropy / log K", fontsize=7)
    legend(axes[0], fontsize=7)
    fig.tight_layout()
    return png(fig)


def _stat(rows: list[dict], key: str, q: str) -> np.ndarray:
    return np.array([_num(r[key][q]) for r in rows])


def _yerr(m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Error bars of a point and its percentile interval; a biased statistic (the KS distance
    of resampled data runs high) can sit outside its interval, so negative bars become 0."""
    return [np.maximum(m - lo, 0.0), np.maximum(hi - m, 0.0)]


def entropy_vs_size(analysis: dict) -> bytes:
    """Fig. 5: mean token entropy of training and generated sequences, and the gap."""
    plt = pyplot()
    rows = analysis["per_size"]
    fig, (ax, ax_gap) = plt.subplots(1, 2, figsize=(9, 3.4))
    for mi, model in enumerate(sorted({r["model"] for r in rows})):
        sel = [r for r in rows if r["model"] == model]
        n = np.array([r["num_train"] for r in sel], dtype=float)
        for key, color, label in (("train_token_entropy", TRAIN_COLOR, "train"),
                                  ("generated_token_entropy", GENERATED_COLOR, "generated")):
            m = _stat(sel, key, "mean")
            ax.errorbar(n, m, yerr=_yerr(m, _stat(sel, key, "lo"), _stat(sel, key, "hi")),
                        marker="o", ms=3, color=color, alpha=max(0.3, 1 - 0.3 * mi),
                        label=f"{model} {label}")
        ax_gap.plot(n, _stat(sel, "token_entropy_gap", "mean"), marker="o", ms=3, label=model)
        ax_gap.fill_between(n, _stat(sel, "token_entropy_gap", "lo"),
                            _stat(sel, "token_entropy_gap", "hi"), alpha=0.2)
    for a in (ax, ax_gap):
        a.set_xscale("log")
        a.set_xlabel("training sequences")
    ax.set_ylabel("mean token entropy (nats)")
    ax_gap.set_ylabel("entropy gap: generated - train")
    ax_gap.axhline(0, color="k", lw=0.6)
    legend(ax, fontsize=7)
    legend(ax_gap, fontsize=7)
    return png(fig)


def transition_diagnostics(analysis: dict) -> bytes:
    """Recovery gap, KS distance and membership AUROC vs training size, per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    eps = analysis["settings"]["recovery_eps"]
    ks_level = analysis["settings"]["ks_level"]
    for model in sorted({r["model"] for r in analysis["per_size"]}):
        sel = [r for r in analysis["per_size"] if r["model"] == model]
        n = [r["num_train"] for r in sel]
        gap = _stat(sel, "train_recovery", "mean") - _stat(sel, "test_recovery", "mean")
        axes[0].plot(n, gap, marker="o", ms=3, label=model)
        ks = _stat(sel, "ks_train_vs_generated", "mean")
        axes[1].errorbar(n, ks, yerr=_yerr(ks, _stat(sel, "ks_train_vs_generated", "lo"),
                                           _stat(sel, "ks_train_vs_generated", "hi")),
                         marker="o", ms=3, label=model)
        auc = np.array([_num(r["membership"]["scores"]["entropy"]["auroc"]["mean"]) for r in sel])
        lo = np.array([_num(r["membership"]["scores"]["entropy"]["auroc"]["lo"]) for r in sel])
        hi = np.array([_num(r["membership"]["scores"]["entropy"]["auroc"]["hi"]) for r in sel])
        axes[2].errorbar(n, auc, yerr=_yerr(auc, lo, hi), marker="o", ms=3, label=model)
    axes[0].axhspan(-eps, eps, color="grey", alpha=0.2)
    axes[0].set_ylabel(f"train - test recovery (t = {analysis['settings']['t_main']:g})")
    axes[1].axhline(ks_level, color="grey", ls="--")
    axes[1].set_ylabel("KS distance, train vs generated entropy")
    axes[2].axhline(0.5, color="grey", ls="--")
    axes[2].set_ylabel("membership AUROC of low entropy")
    for a in axes:
        a.set_xscale("log")
        a.set_xlabel("training sequences")
        legend(a, fontsize=7)
    return png(fig)


def _estimate_point(e: dict, sizes: list[int]) -> tuple[float, float, float, bool]:
    """(value, lo, hi, censored) of an estimate for plotting, censored ends drawn at the grid."""
    value = {"estimated": e["value"], "left_censored": sizes[0],
             "right_censored": sizes[-1]}.get(e["status"], math.nan)
    lo = sizes[0] if e["lo_censored"] else _num(e["lo"])
    hi = sizes[-1] if e["hi_censored"] else _num(e["hi"])
    return _num(value), lo, hi, e["status"] != "estimated"


def threshold_curves(analysis: dict) -> bytes:
    """Each transition estimate against its threshold (eps; KS level), one line per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4), sharey=True)
    for model, tr in analysis["transitions"].items():
        for ax, key in zip(axes, ("recovery", "entropy_only")):
            ests = tr[key]["by_threshold"]
            x = [e["threshold"] for e in ests]
            pts = [_estimate_point(e, tr["sizes"]) for e in ests]
            v, lo, hi = (np.array([p[i] for p in pts], dtype=float) for i in range(3))
            line, = ax.plot(x, v, marker="o", ms=4, label=model)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
            censored = np.array([p[3] for p in pts])
            ax.plot(np.array(x)[censored], v[censored], "o", ms=7, mfc="white",
                    color=line.get_color())
    axes[0].set_xlabel("eps: train - test recovery at most")
    axes[1].set_xlabel("KS level of train vs generated entropy")
    axes[0].set_ylabel("transition: training sequences")
    for ax in axes:
        ax.set_yscale("log")
        legend(ax, fontsize=7)
    return png(fig)


def membership_vs_size(analysis: dict) -> bytes:
    """AUROC (95% interval) of every membership score against training size, per model."""
    plt = pyplot()
    models = sorted({r["model"] for r in analysis["per_size"]})
    fig, axes = plt.subplots(1, len(models), figsize=(5.0 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        sel = [r for r in analysis["per_size"] if r["model"] == model]
        n = np.array([r["num_train"] for r in sel], dtype=float)
        for score in sel[0]["membership"]["scores"]:
            a = [r["membership"]["scores"][score]["auroc"] for r in sel]
            m = np.array([_num(x["mean"]) for x in a])
            ax.plot(n, m, marker="o", ms=3, label=score)
            ax.fill_between(n, [_num(x["lo"]) for x in a], [_num(x["hi"]) for x in a],
                            alpha=0.12)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylim(0.3, 1.02)
        ax.set_title(model)
        ax.set_xlabel("training sequences")
        ax.set_ylabel("membership AUROC")
        legend(ax, fontsize=7)
    return png(fig)
