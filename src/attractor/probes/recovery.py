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
import sys
from dataclasses import dataclass

import numpy as np
import torch

from attractor import streams
from attractor.families import family_of
from attractor.probes import common, items
from attractor.probes.stats import auroc, ratio, spearman, summarize
from attractor.retrieval import OUTCOMES

HISTOGRAM_BINS = 40
HISTOGRAM_EDGES = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)      # normalised entropy, Fig. 3B


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


@dataclass(frozen=True)
class Plan:
    """The rows of a recovery probe and the stream key of each (:mod:`attractor.streams`): the
    probe's base key, the sequence's tokens (and which repeat of them in its split it is) and the
    level, so a sequence's corruption and retrieval are the same in any batch or file."""

    batch: Batch
    keys: list[int]                     # (R,)
    example_rows: frozenset[int]        # rows kept whole as examples for the report
    chunk: int                          # rows per denoiser call
    unigram: object = None              # the unigram denoiser of the baseline, if asked for


def _batch(run, config, generator: torch.Generator) -> Batch:
    F = len(config.levels)
    parts = common.pick_sequences(run, config.num_sequences, generator)
    split = [s for s, (ids, _, _) in parts.items() for _ in range(len(ids) * F)]
    ids = torch.cat([p[0] for p in parts.values()]).repeat_interleave(F)
    x0 = torch.cat([p[1] for p in parts.values()]).repeat_interleave(F, dim=0)
    mask = torch.cat([p[2] for p in parts.values()]).repeat_interleave(F, dim=0)
    level = torch.tensor(config.levels, dtype=torch.float64).repeat(len(ids) // F)
    return Batch(split, ids, level, x0, mask)


def _example_rows(batch: Batch, per_split: int) -> frozenset[int]:
    """The rows of the first ``per_split`` sequences of each split, at every level."""
    out, seen = set(), {"train": set(), "test": set()}
    for r, (split, i) in enumerate(zip(batch.split, batch.ids.tolist())):
        if i in seen[split] or len(seen[split]) < per_split:
            seen[split].add(i)
            out.add(r)
    return frozenset(out)


def plan(run, config, generator: torch.Generator) -> Plan:
    """Every (split, sequence, level) row of Experiment 1 or 2 and its stream key."""
    base = streams.draw_base(generator)
    batch = _batch(run, config, generator)
    levels = {v: j for j, v in enumerate(config.levels)}
    keys, seen = [], {}
    for r in range(len(batch.split)):
        content = streams.digest(batch.x0[r][batch.mask[r]])
        repeat = seen.setdefault((batch.split[r], content, float(batch.level[r])), [0])
        keys.append(streams.item_key(base, content, repeat[0], levels[float(batch.level[r])]))
        repeat[0] += 1
    rows = common.chunk_rows(config.common.max_batch, batch.x0.shape[1], run.vocab_size)
    return Plan(batch, keys, _example_rows(batch, config.examples), rows,
                unigram_denoiser(run) if config.unigram_baseline else None)


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


def _retrieve(run, config, plan: Plan, denoiser, x0, mask, level, keys: list[int]) -> tuple:
    """Corrupt and retrieve one chunk of rows, each from its own keyed streams (one for the
    corruption and the model's retrieval, one for the unigram baseline's): z_t (B, L) and
    {"x_hat", "entropy" (start-time, (B, L)), extras of the dynamics, "x_unigram"}."""
    ops = family_of(run)
    rows = streams.RowStreams(keys, run.device)
    zt = config.corrupt(ops, x0, mask, level, rows)
    t = config.start_times(level)
    targets = changed_positions(x0, zt, mask)       # only the autoregressive baseline uses them
    out = {"entropy": ops.start_entropy(denoiser, zt, t, mask)}
    out["x_hat"], extras = config.retrieve(ops, denoiser, zt, t, rows, mask, targets)
    out.update(extras)
    if plan.unigram is not None:
        baseline = streams.RowStreams([streams.item_key(k, 1) for k in keys], run.device)
        out["x_unigram"] = config.retrieve(ops, plan.unigram, zt, t, baseline, mask, targets)[0]
    return zt.cpu(), {k: v.cpu() for k, v in out.items()}


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


def _token_histogram(h: torch.Tensor, changed: torch.Tensor, hit: torch.Tensor) -> dict:
    """Counts of one row's normalised start-time entropies of recovered and unrecovered tokens
    over HISTOGRAM_EDGES (Fig. 3B); rows' counts add up to the probe's histogram."""
    return {name: np.histogram(h[sel].numpy(), HISTOGRAM_EDGES)[0].tolist()
            for name, sel in (("recovered", changed & hit), ("unrecovered", changed & ~hit))}


def compute(run, config, plan: Plan, items: list[int], denoiser) -> list[dict]:
    """The records of rows ``items``: the row's numbers, its token-entropy histogram, and the
    sequences themselves where the row is an example."""
    idx = torch.tensor(items, dtype=torch.long)
    b = plan.batch
    part = Batch([b.split[i] for i in items], b.ids[idx], b.level[idx], b.x0[idx], b.mask[idx])
    zt, out = _retrieve(run, config, plan, denoiser, part.x0.to(run.device), part.mask.to(run.device),
                        part.level.to(run.device), [plan.keys[i] for i in items])
    rows = _row_records(part, zt, out, config.LEVEL, run.vocab_size)
    changed = changed_positions(part.x0, zt, part.mask)
    hit = out["x_hat"] == part.x0
    h = out["entropy"] / math.log(run.vocab_size)
    records = []
    for j, item in enumerate(items):
        record = {"row": rows[j], "histogram": _token_histogram(h[j], changed[j], hit[j])}
        if item in plan.example_rows:
            record["example"] = {"x0": part.x0[j].tolist(), "zt": zt[j].tolist(),
                                 "x_hat": out["x_hat"][j].tolist(),
                                 "mask": part.mask[j].tolist()}
        records.append(record)
    return records


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


def _histograms(plan: Plan, records: list, config) -> dict:
    """The rows' token-entropy histograms summed per level and split (Fig. 3B)."""
    out: dict = {}
    for level in config.levels:
        out[str(level)] = {}
        for split in ("train", "test"):
            counts = {"recovered": np.zeros(HISTOGRAM_BINS, np.int64),
                      "unrecovered": np.zeros(HISTOGRAM_BINS, np.int64)}
            for r, record in enumerate(records):
                if plan.batch.split[r] == split and float(plan.batch.level[r]) == level:
                    for name in counts:
                        counts[name] += np.asarray(record["histogram"][name], np.int64)
            out[str(level)][split] = {"edges": HISTOGRAM_EDGES.tolist(),
                                      **{k: v.tolist() for k, v in counts.items()}}
    return out


def _examples(plan: Plan, records: list) -> list:
    """Token ids of the example rows (the first sequences of each split, at every level)."""
    b = plan.batch
    return [{"split": b.split[r], "id": int(b.ids[r]), "level": float(b.level[r]),
             **record["example"], "n_real": int(b.mask[r].sum())}
            for r, record in enumerate(records) if "example" in record]


def finish(run, config, plan: Plan, records: list, rng: np.random.Generator,
           timing) -> common.ProbeResult:
    """Summaries with bootstrap intervals, histograms and examples from every row's record."""
    rows = [record["row"] for record in records]
    return common.ProbeResult(
        config=config, summary=_summaries(rows, config, rng), rows=rows, timing=timing(),
        vocab_size=run.vocab_size, histograms=_histograms(plan, records, config),
        examples=_examples(plan, records),
        notes={"level_name": config.LEVEL, "entropy_taken_from": "p_theta(x0 | z_t) at the "
               "start time t of the reverse process, eq. (13)"})


def run_recovery(run, config, generator: torch.Generator,
         progress: bool = True) -> common.ProbeResult:
    """The whole probe in this process, in memory (``attractor.probes.registry.run_probe``
    also shards it over processes and keeps its finished items on disk)."""
    return items.execute("recovery", sys.modules[__name__], run, config, generator, progress)
