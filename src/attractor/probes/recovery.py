"""Token recovery, eq. (12), and the core of the retrieval experiments 1 and 2 (Figs. 1-3).

    R(x, x_hat) = (1 / |C|) sum_{l in C} delta(x_hat^l, x^l),   C = {l real : z_t^l != x^l}

the fraction of the positions that the corruption changed which the retrieval returns to the
original token (per sequence; NaN when nothing changed). Corruption touches real tokens only.
:mod:`attractor.probes.experiments` says how each experiment corrupts and retrieves.

Beside recovery the probe records the conditional entropy (eq. 13) of the recovered and
unrecovered tokens, taken from the denoiser's prediction at the START of the retrieval,
p_theta(x0 | z_t) at t (Fig. 3B), and the recovery of a unigram denoiser (x_theta = the
training tokens' frequencies, whatever the input) under the same dynamics and corruption: the
level below which recovery says nothing (a uniform denoiser's is ~1/K, uninformative).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from attractor.families import family_of
from attractor.probes import common
from attractor.probes.stats import auroc, ratio, spearman, summarize
from attractor.retrieval import OUTCOMES


def changed_positions(x0: torch.Tensor, zt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """C of eq. (12): (B, L) bool, real positions where z_t differs from x0."""
    return (zt != x0) & mask


def token_recovery(x0: torch.Tensor, x_hat: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """Eq. (12) per sequence: (B, L) ids, (B, L) ids, (B, L) bool -> (B,) float64, NaN if |C| = 0."""
    hits = ((x_hat == x0) & changed).sum(-1).to(torch.float64)
    return hits / changed.sum(-1).to(torch.float64)       # 0 / 0 = NaN where nothing changed


@dataclass(frozen=True)
class Batch:
    """Every (split, sequence, level) row a recovery probe runs, R rows in all."""

    split: list[str]                    # (R,) "train" | "test"
    ids: torch.Tensor                   # (R,) int64 pool ids
    level: torch.Tensor                 # (R,) float64 fraction or t
    x0: torch.Tensor                    # (R, L) int64
    mask: torch.Tensor                  # (R, L) bool, False on pads

    def select(self, split: str) -> torch.Tensor:
        return torch.tensor([s == split for s in self.split])


def _batch(run, config, generator: torch.Generator) -> Batch:
    F = len(config.levels)
    parts = common.pick_sequences(run, config.num_sequences, generator)
    split = [s for s, (ids, _, _) in parts.items() for _ in range(len(ids) * F)]
    ids = torch.cat([p[0] for p in parts.values()]).repeat_interleave(F)
    x0 = torch.cat([p[1] for p in parts.values()]).repeat_interleave(F, dim=0)
    mask = torch.cat([p[2] for p in parts.values()]).repeat_interleave(F, dim=0)
    level = torch.tensor(config.levels, dtype=torch.float64).repeat(len(ids) // F)
    return Batch(split, ids, level, x0, mask)


def unigram_denoiser(run):
    """A denoiser that ignores its input: logits log p(k), the frequency of each id among the
    real tokens of the training sequences (add-1/2 smoothed). (zt (B, L), sigma) -> (B, L, K)."""
    ids = run.train_ids if len(run.train_ids) else run.test_ids     # no members: what there is
    counts = torch.bincount(run.dataset.sequences[ids][run.dataset.loss_mask[ids]],
                            minlength=run.vocab_size).to(torch.float32) + 0.5
    log_p = (counts / counts.sum()).log().to(run.device)

    def denoise(zt: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return log_p.expand(*zt.shape, run.vocab_size)

    return denoise


def _denoise(denoiser, zt: torch.Tensor, t0: torch.Tensor, batch: Batch, run, config,
             generator: torch.Generator, progress: bool) -> dict:
    """Retrieval over all rows in chunks, changing real positions (``mask``) only: {"x_hat",
    "entropy" (start-time, (R, L)), extras of the dynamics ((R,) each), and "x_unigram" (the
    unigram denoiser's retrieval)}."""
    rows = common.chunk_rows(config.common.max_batch, zt.shape[1], run.vocab_size)
    gen = common.device_generator(generator, run.device)
    ops = family_of(run)
    unigram = unigram_denoiser(run) if config.unigram_baseline else None
    parts: dict[str, list] = {}
    bar = tqdm(total=len(zt), desc=f"recovery from {config.LEVEL}", unit="seq",
               disable=not progress, dynamic_ncols=True)
    for sl in common.chunks(len(zt), rows):
        z, t, free, x0 = (v[sl].to(run.device) for v in (zt, t0, batch.mask, batch.x0))
        targets = changed_positions(x0, z, free)    # only the autoregressive baseline uses them
        out = {"entropy": ops.start_entropy(denoiser, z, t)}
        out["x_hat"], extras = config.retrieve(ops, denoiser, z, t, gen, free, targets)
        out.update(extras)
        if unigram is not None:
            out["x_unigram"] = config.retrieve(ops, unigram, z, t, gen, free, targets)[0]
        for key, value in out.items():
            parts.setdefault(key, []).append(value.cpu())
        bar.update(sl.stop - sl.start)
    bar.close()
    return {key: torch.cat(values) for key, values in parts.items()}


def _row_records(batch: Batch, zt, out: dict, level_name: str, vocab_size: int) -> list:
    """Per-(sequence, level) numbers for the JSON-lines file."""
    x0, mask, x_hat, ent = batch.x0, batch.mask, out["x_hat"], out["entropy"]
    changed = changed_positions(x0, zt, mask)
    same = x_hat == x0
    kept = mask & ~changed
    hit, miss = changed & same, changed & ~same
    h = ent / math.log(vocab_size)                                        # normalised
    cols = {
        "n_real": mask.sum(-1), "n_changed": changed.sum(-1), "n_recovered": hit.sum(-1),
        "recovery": token_recovery(x0, x_hat, changed),
        "preserved": (kept & same).sum(-1) / kept.sum(-1).clamp_min(1),
        "exact": (same | ~mask).all(-1),
        "entropy_recovered_sum": (h * hit).sum(-1), "entropy_unrecovered_sum": (h * miss).sum(-1),
        "sequence_entropy": (ent * mask).sum(-1),
    }
    if "x_unigram" in out:
        cols["unigram_recovery"] = token_recovery(x0, out["x_unigram"], changed)
    cols.update({k: out[k] for k in ("iterations", "cycle_length") if k in out})
    cols = {k: v.tolist() for k, v in cols.items()}
    if "outcome" in out:
        cols["outcome"] = [OUTCOMES[o] for o in out["outcome"].tolist()]
    return [{"split": split, "id": int(i), level_name: float(lv), **{k: cols[k][r] for k in cols}}
            for r, (split, i, lv) in enumerate(zip(batch.split, batch.ids, batch.level))]


def _column(rows: list, key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=np.float64)


def _split_stats(sel: list, rng: np.random.Generator, n: int) -> dict:
    col = {k: _column(sel, k) for k in ("recovery", "n_recovered", "n_changed", "preserved",
                                        "exact", "entropy_recovered_sum",
                                        "entropy_unrecovered_sum")}
    misses = col["n_changed"] - col["n_recovered"]
    out = {
        "recovery": summarize(col["recovery"], rng, n),
        "token_recovery": summarize(np.stack([col["n_recovered"], col["n_changed"]], 1), rng, n,
                                    ratio),
        "preserved": summarize(col["preserved"], rng, n),
        "exact": summarize(col["exact"], rng, n),
        "entropy_recovered": summarize(np.stack([col["entropy_recovered_sum"],
                                                 col["n_recovered"]], 1), rng, n, ratio),
        "entropy_unrecovered": summarize(np.stack([col["entropy_unrecovered_sum"], misses], 1),
                                         rng, n, ratio),
    }
    if sel and "unigram_recovery" in sel[0]:
        out["unigram_recovery"] = summarize(_column(sel, "unigram_recovery"), rng, n)
    if sel and "outcome" in sel[0]:
        for outcome in OUTCOMES:
            out[outcome] = summarize(np.array([r["outcome"] == outcome for r in sel], float),
                                     rng, n)
        out["iterations"] = summarize(_column(sel, "iterations"), rng, n)
    return out


def _summaries(rows: list, config, rng: np.random.Generator) -> list:
    """Per level: bootstrap means and 95% intervals of each split, the train-vs-test AUROC of
    recovery, and the Spearman correlation of start-time entropy and recovery."""
    name, n = config.LEVEL, config.common.bootstrap
    out = []
    for level in config.levels:
        at = [r for r in rows if r[name] == level]
        entry = {name: level}
        for split in ("train", "test"):
            entry[split] = _split_stats([r for r in at if r["split"] == split], rng, n)
        rec = {s: _column([r for r in at if r["split"] == s], "recovery") for s in ("train", "test")}
        entry["auroc_train_vs_test"] = auroc(*(v[~np.isnan(v)] for v in rec.values()))
        entry["spearman_entropy_vs_recovery"] = spearman(_column(at, "sequence_entropy"),
                                                         _column(at, "recovery"))
        out.append(entry)
    return out


def _token_histograms(batch: Batch, zt, out: dict, config, vocab_size: int) -> dict:
    """Normalised start-time entropies of recovered vs unrecovered tokens, per level and split
    (Fig. 3B)."""
    changed = changed_positions(batch.x0, zt, batch.mask)
    hit = changed & (out["x_hat"] == batch.x0)
    h = out["entropy"] / math.log(vocab_size)
    out = {}
    for level in config.levels:
        out[str(level)] = {}
        for split in ("train", "test"):
            sel = (batch.select(split) & (batch.level == level))[:, None] & changed
            out[str(level)][split] = common.histograms(
                {"recovered": h[sel & hit].numpy(), "unrecovered": h[sel & ~hit].numpy()},
                lo=0.0, hi=1.0)
    return out


def _examples(batch: Batch, zt, x_hat, per_split: int) -> list:
    """Token ids of the first ``per_split`` sequences of each split, at every level."""
    out, seen = [], {"train": set(), "test": set()}
    for r, (split, i) in enumerate(zip(batch.split, batch.ids.tolist())):
        if i not in seen[split] and len(seen[split]) >= per_split:
            continue
        seen[split].add(i)
        out.append({"split": split, "id": i, "level": float(batch.level[r]),
                    "x0": batch.x0[r].tolist(), "zt": zt[r].tolist(), "x_hat": x_hat[r].tolist(),
                    "mask": batch.mask[r].tolist(), "n_real": int(batch.mask[r].sum())})
    return out


def run_recovery(run, config, generator: torch.Generator,
                 progress: bool = True) -> common.ProbeResult:
    """Experiment 1 or 2 (by ``config``, :mod:`attractor.probes.experiments`) on training and
    held-out sequences of ``run``.

    All (sequence, level) pairs of both splits form one batch, cut into chunks of ``max_batch``
    rows, so the denoiser's forward passes dominate the cost.
    """
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    start = time.perf_counter()
    batch = _batch(run, config, generator)
    zt = config.corrupt(family_of(run), batch.x0, batch.mask, batch.level, generator)
    out = _denoise(denoiser, zt, config.start_times(batch.level), batch, run, config,
                   generator, progress)
    rows = _row_records(batch, zt, out, config.LEVEL, run.vocab_size)
    return common.ProbeResult(
        config=config, summary=_summaries(rows, config, rng), rows=rows,
        timing=denoiser.timing(time.perf_counter() - start, len(zt)), vocab_size=run.vocab_size,
        histograms=_token_histograms(batch, zt, out, config, run.vocab_size),
        examples=_examples(batch, zt, out["x_hat"], config.examples),
        notes={"level_name": config.LEVEL, "entropy_taken_from": "p_theta(x0 | z_t) at the "
               "start time t of the reverse process, eq. (13)"})
