"""Numbers per (model, training size), pooled over training seeds.

Each number is a per-seed statistic of the probes' per-sequence rows, averaged over the seeds;
its 95% interval is a hierarchical bootstrap (seeds resampled, then sequences;
:func:`attractor.probes.stats.hierarchical`). With one seed the interval covers sequences only,
and every row says which (``covers``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from attractor.analysis.collect import RunResults
from attractor.probes.membership import FPRS, best_score, tpr_at
from attractor.probes.stats import auroc, hierarchical, interval, ks_distance, seed_mean


def covers(n_seeds: int) -> str:
    """What an interval over ``n_seeds`` seeds resamples."""
    return "sequences" if n_seeds == 1 else f"{n_seeds} training seeds, then sequences"


def pooled(cells: list[tuple], stat: Callable[..., float], rng: np.random.Generator,
           n: int) -> dict:
    """{"mean", "lo", "hi"} of ``stat`` over one tuple of samples per seed."""
    column = [[c] for c in cells]
    return interval(float(seed_mean(stat, column)[0]), hierarchical(stat, column, n, rng)[:, 0])


def closest(levels, target: float) -> float:
    return min(levels, key=lambda lv: abs(lv - target))


def _mean(a: np.ndarray) -> float:
    return float(a.mean())


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() - b.mean())


def membership(seeds: list[RunResults], t: float, rng, n: int) -> dict:
    """Every membership score's AUROC and TPR at FPRS, pooled; recovery (at t) included."""
    out = {}
    for name in seeds[0].scores["train"]:
        out[name] = _score([(r.scores["train"][name], r.scores["test"][name]) for r in seeds],
                           rng, n)
    rec = [r.stochastic[closest(r.stochastic, t)] for r in seeds]
    out["recovery"] = _score([(lv["train"][0], lv["test"][0]) for lv in rec], rng, n)
    return {"scores": out, "best": best_score(out)}


def _score(cells: list[tuple], rng, n: int) -> dict:
    cells = [tuple(a[np.isfinite(a)] for a in c) for c in cells]
    out = {"auroc": pooled(cells, auroc, rng, n), "members": int(sum(len(c[0]) for c in cells)),
           "nonmembers": int(sum(len(c[1]) for c in cells))}
    for target in FPRS:
        out[f"tpr_at_fpr_{target:g}"] = {
            **pooled(cells, lambda a, b, f=target: tpr_at(a, b, f), rng, n),
            "at_fpr_zero": min(len(c[1]) for c in cells) * target < 1}
    return out


def size_row(seeds: list[RunResults], t: float, rng: np.random.Generator, n: int) -> dict:
    """One (model, size): recovery, entropies, KS, membership, copies, pooled over its seeds."""
    first = seeds[0]
    rec = [r.stochastic[closest(r.stochastic, t)] for r in seeds]
    gen_tok = [r.entropies["generated"] / np.maximum(r.tokens["generated"], 1) for r in seeds]
    ref_tok = [r.entropies["train"] / np.maximum(r.tokens["train"], 1) for r in seeds]
    stoch = [closest_entry(r.probes["recovery_stochastic"]["summary"], t) for r in seeds]
    categories = [r.probes["generate"]["summary"]["categories"] for r in seeds]
    return {
        "model": first.model, "num_train": first.num_train, "seeds": [r.seed for r in seeds],
        "covers": covers(len(seeds)), "t": closest(first.stochastic, t),
        "train_nelbo": _average([r.train_nelbo for r in seeds]),
        "test_nelbo": _average([r.test_nelbo for r in seeds]),
        "train_recovery": pooled([(lv["train"][0],) for lv in rec], _mean, rng, n),
        "test_recovery": pooled([(lv["test"][0],) for lv in rec], _mean, rng, n),
        "unigram_recovery": _average([e["test"].get("unigram_recovery", {}).get("mean")
                                      for e in stoch]),
        "train_token_entropy": pooled([(r.token_entropy["train"],) for r in seeds], _mean, rng, n),
        "test_token_entropy": pooled([(r.token_entropy["test"],) for r in seeds], _mean, rng, n),
        "generated_token_entropy": pooled([(g,) for g in gen_tok], _mean, rng, n),
        "token_entropy_gap": pooled(list(zip(gen_tok, ref_tok)), _gap, rng, n),
        "ks_train_vs_generated": pooled([(r.entropies["train"], r.entropies["generated"])
                                         for r in seeds], ks_distance, rng, n),
        "membership": membership(seeds, t, rng, n),
        "spearman_entropy_vs_recovery": _average([e["spearman_entropy_vs_recovery"]
                                                  for e in stoch]),
        "generated_categories": {k: _average([c.get(k) for c in categories])
                                 for k in categories[0]},
    }


def closest_entry(entries: list[dict], t: float) -> dict:
    return min(entries, key=lambda e: abs(e["t"] - t))


def _average(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
