"""Figures of the probes, drawn from their saved JSON alone, as PNG bytes for a report.

Each public function takes a probe's JSON and returns [(caption, PNG bytes)]:

recovery          Figs. 1-2: recovery of train vs test against the corruption level, and
                  Fig. 3B: start-time entropy of recovered vs unrecovered tokens
entropy           train vs test sequence conditional entropy
generate          Fig. 4: train vs generated sequence entropy; nearest-training distances
"""

from __future__ import annotations

import numpy as np

from attractor.report.plotting import (
    CONTROL_COLOR,
    GENERATED_COLOR,
    TEST_COLOR,
    TRAIN_COLOR,
    legend,
    png,
    pyplot,
)

COLORS = {"train": TRAIN_COLOR, "test": TEST_COLOR, "generated": GENERATED_COLOR,
          "recovered": TRAIN_COLOR, "unrecovered": TEST_COLOR}


def _stairs(ax, hist: dict, keys, density: bool = True) -> None:
    edges = np.asarray(hist["edges"])
    for key in keys:
        counts = np.asarray(hist.get(key, []), dtype=float)
        if counts.sum() == 0:
            continue
        if density:
            counts = counts / (counts.sum() * np.diff(edges))
        ax.stairs(counts, edges, label=f"{key} (n={int(np.sum(hist[key]))})",
                  color=COLORS.get(key, CONTROL_COLOR), linewidth=1.5)


def recovery_curves(result: dict) -> bytes:
    """Mean per-sequence recovery (eq. 12) with 95% bootstrap bands, train solid, test dashed."""
    plt = pyplot()
    name = result["level_name"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    levels = [e[name] for e in result["summary"]]
    for split, style in (("train", "-"), ("test", "--")):
        stats = [e[split]["recovery"] for e in result["summary"]]
        mean = np.array([np.nan if s["mean"] is None else s["mean"] for s in stats], dtype=float)
        lo = np.array([np.nan if s["lo"] is None else s["lo"] for s in stats], dtype=float)
        hi = np.array([np.nan if s["hi"] is None else s["hi"] for s in stats], dtype=float)
        ax.plot(levels, mean, style, marker="o", color=COLORS[split], label=split)
        ax.fill_between(levels, lo, hi, color=COLORS[split], alpha=0.2, linewidth=0)
        base = [e[split].get("unigram_recovery", {}).get("mean") for e in result["summary"]]
        if any(b is not None for b in base):
            ax.plot(levels, [np.nan if b is None else b for b in base], ":", color=COLORS[split],
                    linewidth=1, label=f"{split}, unigram denoiser")
    if name == "fraction":
        ax.set_xlabel("fraction of corrupted tokens")
        ax.set_title(f"Deterministic retrieval ({result['config']['dynamics']}, "
                     f"t = {result['config']['t']})")
    else:
        ax.set_xlabel("diffusion time t of the corruption and of the start")
        ax.set_title("Stochastic retrieval")
    ax.set_ylabel("token recovery rate")
    ax.set_ylim(-0.02, 1.02)
    legend(ax)
    return png(fig)


def entropy_by_recovery(result: dict, level: float | None = None) -> bytes:
    """Normalised token entropy of recovered vs unrecovered tokens at one level (default
    nearest 0.25)."""
    plt = pyplot()
    hists = result["histograms"]
    keys = list(hists)
    target = 0.25 if level is None else level
    key = min(keys, key=lambda k: abs(float(k) - target))
    title = "t" if result["level_name"] == "t" else f"start t = {result['config']['t']:g}, fraction"
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        _stairs(ax, hists[key][split], ("recovered", "unrecovered"))
        ax.set_title(f"{split} sequences, {title} = {float(key):g}")
        ax.set_xlabel("H(x0 | z_t) / log K")
        legend(ax)
    axes[0].set_ylabel("density")
    return png(fig)


def recovery(result: dict) -> list[tuple[str, bytes]]:
    """Recovery curves, and the entropy of recovered vs unrecovered tokens near t = 0.25."""
    return [("token recovery, train vs test (95% intervals)", recovery_curves(result)),
            ("start-time entropy of recovered vs unrecovered tokens", entropy_by_recovery(result))]


def entropy(result: dict) -> list[tuple[str, bytes]]:
    """Sequence conditional entropy of train vs test, one panel per t."""
    plt = pyplot()
    hists = result["histograms"]
    fig, axes = plt.subplots(1, len(hists), figsize=(4.6 * len(hists), 3.2), squeeze=False)
    for ax, (t, hist) in zip(axes[0], hists.items()):
        _stairs(ax, hist, ("train", "test"))
        ax.set_title(f"t = {float(t):g}")
        ax.set_xlabel("sequence conditional entropy (nats)")
        legend(ax)
    axes[0][0].set_ylabel("density")
    return [("sequence conditional entropy, train vs test", png(fig)),
            ("ROC of each membership score, training vs held-out sequences (log-log)",
             roc_curves(result["membership"]["scores"]))]


def roc_curves(scores: dict) -> bytes:
    """TPR against FPR of each membership score on log-log axes, with the chance diagonal."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    floor = min((1.0 / max(e["nonmembers"], 1) for e in scores.values()), default=1e-3)
    for name, e in scores.items():
        if "roc" not in e:
            continue
        fpr = np.maximum(np.asarray(e["roc"]["fpr"]), floor / 2)
        tpr = np.maximum(np.asarray(e["roc"]["tpr"]), floor / 2)
        ax.plot(fpr, tpr, drawstyle="steps-post", label=f"{name} (AUC {e['auroc']['mean']:.2f})")
    ax.plot([floor / 2, 1], [floor / 2, 1], ":", color=CONTROL_COLOR, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false-positive rate (held-out called member)")
    ax.set_ylabel("true-positive rate")
    legend(ax, fontsize=7)
    return png(fig)


def generate(result: dict) -> list[tuple[str, bytes]]:
    """Left: sequence entropy of train vs generated (Fig. 4). Right: nearest-train distances."""
    plt = pyplot()
    hists = result["histograms"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.3))
    _stairs(left, hists["sequence_entropy"], ("train", "generated"))
    left.set_xlabel(f"sequence conditional entropy at t = {result['config']['entropy_t']:g} "
                    "(nats)")
    left.set_ylabel("density")
    legend(left)
    _stairs(right, hists["nearest_train_distance"], ("generated", "test"))
    right.axvline(result["config"]["near_copy"], color=CONTROL_COLOR, linestyle=":",
                  label="near-copy threshold")
    right.set_xlabel("Hamming distance to nearest training sequence / length")
    legend(right)
    return [("sequence entropy of generated vs training sequences (Fig. 4); distance to the "
             "nearest training sequence", png(fig))]
