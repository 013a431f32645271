"""Figures of the load sweeps, drawn from the per-alpha summaries (means and ``_sd`` columns).

Each function saves PNGs into ``out`` and returns ``[{"file": ..., "caption": ...}]`` for the
report, which embeds them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attractor.memories.binary.measures import gardner_kappa_max
from attractor.report.plotting import (
    CONTROL_COLOR,
    GENERATED_COLOR,
    TEST_COLOR,
    TRAIN_COLOR,
    pyplot,
    save,
)

MODEL_STYLE = {
    "pl": {"color": TRAIN_COLOR, "label": "pseudo-likelihood", "ls": "-"},
    "hebb": {"color": CONTROL_COLOR, "label": "Hebbian", "ls": "--"},
    "pinv": {"color": GENERATED_COLOR, "label": "pseudo-inverse", "ls": ":"},
}
TARGET_STYLE = {
    "train": {"color": TRAIN_COLOR, "label": "train"},
    "test": {"color": TEST_COLOR, "label": "unseen test"},
    "features": {"color": GENERATED_COLOR, "label": "features"},
    "control": {"color": CONTROL_COLOR, "label": "random control"},
}
HOPFIELD_ALPHA_C = 0.138  # Amit, Gutfreund and Sompolinsky (1985)


def _column(summary: Sequence[dict], name: str) -> tuple[np.ndarray, np.ndarray]:
    mean = np.array([row.get(name, np.nan) for row in summary], dtype=float)
    sd = np.array([row.get(f"{name}_sd", 0.0) for row in summary], dtype=float)
    return mean, sd


def _line(ax, x, summary, column, **style) -> None:
    mean, sd = _column(summary, column)
    ax.errorbar(x, mean, yerr=sd, marker="o", ms=3.5, capsize=2, lw=1.4, **style)


def capacity_figures(summary: Sequence[dict], models: Sequence[str], out: Path) -> list[dict]:
    plt = pyplot()
    alphas = np.array([row["alpha"] for row in summary], dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for model in models:
        _line(ax, alphas, summary, f"{model}_radius", **MODEL_STYLE[model])
    ax.axvline(HOPFIELD_ALPHA_C, color=CONTROL_COLOR, lw=0.8, ls=":", label=r"Hebbian $\alpha_c$")
    ax.set(
        xlabel=r"load $\alpha = P/N$", ylabel="basin radius (flipped fraction)", ylim=(-0.02, 0.52)
    )
    ax.legend()
    save(fig, out / "basin_radius.png")

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    dense = np.linspace(alphas.min(), alphas.max(), 200)
    ax.plot(
        dense,
        [gardner_kappa_max(a) for a in dense],
        color="black",
        lw=1,
        label=r"Gardner $\kappa_{max}(\alpha)$",
    )
    for model in models:
        _line(ax, alphas, summary, f"{model}_kappa_min", **MODEL_STYLE[model])
    ax.axhline(0, color="black", lw=0.5)
    ax.set(xlabel=r"load $\alpha = P/N$", ylabel=r"smallest margin $\kappa_{min}$")
    ax.legend()
    save(fig, out / "margins.png")
    return [
        {
            "file": "basin_radius.png",
            "caption": "Basin radius of the stored random patterns against the load (mean and "
            "standard deviation over seeds).",
        },
        {
            "file": "margins.png",
            "caption": "Smallest margin kappa = xi_i h_i / ||J_i|| over patterns and sites, against "
            "Gardner's bound kappa_max(alpha) on any coupling matrix.",
        },
    ]


def _final_overlap_figure(plt, summary, alphas, targets, starts, models, out: Path) -> None:
    fig, axes = plt.subplots(
        1, len(starts), figsize=(2.7 * len(starts) + 1.2, 3.0), sharey=True, squeeze=False
    )
    for ax, m0 in zip(axes[0], starts):
        for target in targets:
            for model in models:
                # Only the PL curves carry labels: colour = target, line style = model.
                style = dict(TARGET_STYLE[target], ls=MODEL_STYLE[model]["ls"])
                if model != "pl":
                    style["label"] = None
                _line(ax, alphas, summary, f"{model}_{target}_m{m0:g}", **style)
        ax.set(xscale="log", title=f"start overlap $m_0$ = {m0:g}", xlabel=r"$\alpha = P/N$")
    axes[0][0].set(ylabel="final overlap m", ylim=(-0.05, 1.05))
    for model in models[1:]:
        axes[0][-1].plot(
            [], [], color="black", ls=MODEL_STYLE[model]["ls"], label=MODEL_STYLE[model]["label"]
        )
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    save(fig, out / "final_overlap.png")


def generalization_figures(summary, config, models: Sequence[str], out: Path) -> list[dict]:
    plt = pyplot()
    alphas = np.array([row["alpha"] for row in summary], dtype=float)
    targets = [t for t in TARGET_STYLE if f"pl_{t}_radius" in summary[0]]
    _final_overlap_figure(plt, summary, alphas, targets, config.start_overlaps, models, out)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2))
    for target in targets:
        _line(left, alphas, summary, f"pl_{target}_radius", **TARGET_STYLE[target])
    left.set(xscale="log", xlabel=r"$\alpha = P/N$", ylabel="basin radius", ylim=(-0.02, 0.52))
    left.legend(fontsize=7)
    for target in ("train", "test"):
        _line(right, alphas, summary, f"pl_{target}_entropy", **TARGET_STYLE[target])
    right.set(xscale="log", xlabel=r"$\alpha = P/N$", ylabel="conditional entropy (bits/site)")
    right.legend(fontsize=7)
    save(fig, out / "basins_entropy.png")
    return [
        {
            "file": "final_overlap.png",
            "caption": "Final overlap with each target after zero-temperature retrieval started at "
            "overlap m0 (mean and standard deviation over seeds"
            + ("; dashed: Hebbian)." if "hebb" in models else ")."),
        },
        {
            "file": "basins_entropy.png",
            "caption": "Left: basin radius of train, unseen test, feature and random targets "
            "(pseudo-likelihood memory). Right: mean per-site entropy of "
            "p(s_i | s_-i) at train and test points.",
        },
    ]
