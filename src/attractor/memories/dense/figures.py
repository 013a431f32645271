"""Figures of the dense experiments, drawn once at run time and embedded by the report.

Colours: memorised = TRAIN_COLOR, spurious = TEST_COLOR, generalised = GENERATED_COLOR, chance
controls = CONTROL_COLOR.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attractor.memories.dense import energy as am
from attractor.report.plotting import (
    CONTROL_COLOR,
    GENERATED_COLOR,
    TEST_COLOR,
    TRAIN_COLOR,
    pyplot,
    save,
)

CLASS_COLORS = (TRAIN_COLOR, TEST_COLOR, GENERATED_COLOR)


def _mean_by_k(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    ks = sorted({r["K"] for r in rows})
    means = []
    for k in ks:
        vals = [r[key] for r in rows if r["K"] == k and r[key] == r[key]]  # drop NaN
        means.append(sum(vals) / len(vals) if vals else float("nan"))
    return ks, means


def fractions_figure(out: Path, learned: list[dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ks = [r["K"] for r in learned]
    for name, color in zip(("memorised", "spurious", "generalised"), CLASS_COLORS):
        ax.plot(ks, [r[name] for r in learned], "o-", color=color, label=name)
    ax.plot(ks, [r["chance_spurious"] for r in learned], "x--", color=CONTROL_COLOR,
            label="spurious by chance (fresh data)")
    ax.set(xscale="log", xlabel="training size K", ylabel="fraction of samples", ylim=(-0.02, 1.02))
    ax.legend(fontsize=7)
    save(fig, out / "fractions.png")


def minima_figure(out: Path, exact: list[dict]) -> None:
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    ks, mem = _mean_by_k(exact, "memorised_minima")
    _, off = _mean_by_k(exact, "off_data_minima")
    a.plot(ks, mem, "o-", color=TRAIN_COLOR, label="at a training point")
    a.plot(ks, off, "s-", color=TEST_COLOR, label="off the data")
    a.set(xscale="log", xlabel="K", ylabel="minima (mean over seeds)")
    a.legend(fontsize=7)
    for key, color, label in (("lowest_eig_memorised", TRAIN_COLOR, "at a training point"),
                              ("lowest_eig_off_data", TEST_COLOR, "off the data")):
        ks, vals = _mean_by_k(exact, key)
        b.plot(ks, vals, "o-", color=color, label=label)
    b.set(xscale="log", xlabel="K", ylabel="smallest Hessian eigenvalue")
    b.legend(fontsize=7)
    save(fig, out / "minima.png")


def spectra_figure(out: Path, minima: list[dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ks = sorted({m["K"] for m in minima})
    for i, k in enumerate(ks):
        for m in (m for m in minima if m["K"] == k):
            eig = m["eigenvalues"]
            jitter = torch.linspace(-0.25, 0.25, len(eig)).tolist() if len(eig) > 1 else [0.0]
            ax.scatter([i + j for j in jitter], eig, s=4, alpha=0.6,
                       color=TRAIN_COLOR if m["memorised"] else TEST_COLOR)
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set(xlabel="K (blue: minimum at a training point, orange: off the data)",
           ylabel="Hessian eigenvalues at minima")
    save(fig, out / "spectra.png")


def entropy_figure(out: Path, rows: list[dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    sc = ax.scatter([r["exact"] for r in rows], [r["laplace"] for r in rows], s=8,
                    c=[torch.tensor(r["sigma"]).log10().item() for r in rows], cmap="viridis")
    lo = min(min(r["exact"] for r in rows), min(r["laplace"] for r in rows))
    hi = max(max(r["exact"] for r in rows), max(r["laplace"] for r in rows))
    ax.plot([lo, hi], [lo, hi], color=CONTROL_COLOR, lw=1)
    fig.colorbar(sc, ax=ax, label="log10 sigma")
    ax.set(xlabel="exact H[x0 | x_t] (Monte Carlo)",
           ylabel="d/2 log 2 pi e - 1/2 log det Hess")
    save(fig, out / "entropy.png")


def basins_figure(out: Path, learned: list[dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ks = [r["K"] for r in learned]
    ax.plot(ks, [r["basin_train_median"] for r in learned], "o-", color=TRAIN_COLOR,
            label="training points")
    ax.plot(ks, [r["basin_spurious_median"] for r in learned], "s-", color=TEST_COLOR,
            label="spurious attractors")
    ax.set(xscale="log", yscale="log", xlabel="K", ylabel="critical noise sigma_c (median)")
    ax.legend(fontsize=7)
    save(fig, out / "basins.png")


def common_figures(out: Path, exact, minima, learned, entropy_rows) -> None:
    """Figures both experiments share."""
    fractions_figure(out, learned)
    minima_figure(out, exact)
    spectra_figure(out, minima)
    entropy_figure(out, entropy_rows)
    basins_figure(out, learned)


def circle_figures(out: Path, points, cfg, minima: list[dict], arrays: dict) -> None:
    """Energy landscapes with their minima (seed 0), and learned samples by class."""
    plt = pyplot()
    ks = _pick(cfg.exact_ks, 4)
    fig, axes = plt.subplots(1, len(ks), figsize=(3.1 * len(ks), 3.1), squeeze=False)
    grid = torch.linspace(-1.4, 1.4, 161, dtype=torch.float64)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    for ax, k in zip(axes[0], ks):
        pats = points(k, 0)
        e = am.energy(torch.stack([gx.flatten(), gy.flatten()], -1), pats, cfg.sigma)
        ax.contourf(gx.numpy(), gy.numpy(), e.view(gx.shape).numpy(), levels=30, cmap="Greys_r")
        ax.scatter(pats[:, 0].numpy(), pats[:, 1].numpy(), s=6, color="white", edgecolors="black", lw=0.3)
        for m in (m for m in minima if m["K"] == k):
            ax.scatter(*m["point"], s=22, marker="x",
                       color=TRAIN_COLOR if m["memorised"] else TEST_COLOR)
        ax.set(title=f"K = {k}, sigma = {cfg.sigma}", aspect="equal", xticks=[], yticks=[])
    save(fig, out / "landscape.png")
    _circle_samples(out, points, arrays)


def _circle_samples(out: Path, points, arrays: dict) -> None:
    plt = pyplot()
    ks = _pick(sorted(arrays), 4)
    fig, axes = plt.subplots(1, len(ks), figsize=(3.1 * len(ks), 3.1), squeeze=False)
    for ax, k in zip(axes[0], ks):
        x, lab = arrays[k]["samples"], arrays[k]["labels"]
        for i, color in enumerate(CLASS_COLORS):
            ax.scatter(x[lab == i, 0].numpy(), x[lab == i, 1].numpy(), s=3, color=color, alpha=0.6)
        pats = points(k)
        ax.scatter(pats[:, 0].numpy(), pats[:, 1].numpy(), s=10, color="black", marker="+", lw=0.6)
        ax.set(title=f"learned score, K = {k}", aspect="equal", xlim=(-1.4, 1.4), ylim=(-1.4, 1.4))
    save(fig, out / "samples.png")


def digits_figures(out: Path, arrays: dict) -> None:
    """Eight samples per K, framed by their class colour."""
    plt = pyplot()
    ks = sorted(arrays)
    fig, axes = plt.subplots(len(ks), 8, figsize=(8, 1.1 * len(ks)), squeeze=False)
    for row, k in zip(axes, ks):
        x, lab = arrays[k]["samples"], arrays[k]["labels"]
        for j, ax in enumerate(row):
            ax.imshow(x[j].view(8, 8).clamp(-1, 1).numpy(), cmap="gray_r", vmin=-1, vmax=1)
            ax.set(xticks=[], yticks=[])
            for spine in ax.spines.values():
                spine.set(visible=True, color=CLASS_COLORS[int(lab[j])], linewidth=2.5)
        row[0].set_ylabel(f"K={k}", fontsize=7)
    save(fig, out / "digits_samples.png")


def _pick(ks, n: int) -> list[int]:
    ks = list(ks)
    if len(ks) <= n:
        return ks
    idx = torch.linspace(0, len(ks) - 1, n).round().long().tolist()
    return [ks[i] for i in idx]
