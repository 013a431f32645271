"""Token recovery, eq. (12), and the retrieval experiments 1 and 2 (paper Figs. 1-3).

    R(x, x_hat) = (1 / |C|) sum_{l in C} delta(x_hat^l, x^l),   C = {l real : z_t^l != x^l}

the fraction of the positions that the corruption changed which the reverse process returns to
the original token (per sequence; NaN when nothing changed). Corruption touches real tokens only.

Both experiments share one core, :func:`run_recovery`; a config says how to corrupt, where the
reverse process starts and which dynamics it runs:

Experiment 1 (:class:`DeterministicConfig`, Fig. 1): exactly n = max(1, round(f * real tokens))
positions are changed (``corrupt_exactly``) for each fraction f of a grid, and greedy dynamics run
from a FIXED diffusion time t (default 0.25): the basin curves of train vs test sequences.

Experiment 2 (:class:`StochasticConfig`, Figs. 2-3): z_t ~ q(z_t | x) of eq. (1) for each t of a
grid and the ancestral reverse process from that same t.

Beside recovery, both record the conditional entropy (eq. 13) of the recovered and unrecovered
tokens, taken from the denoiser's prediction at the START of the reverse process,
p_theta(x0 | z_t) at t (Fig. 3B).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from tqdm import tqdm

from attractor.config import check, setting
from attractor.forward import corrupt_exactly, q_xt
from attractor.probes import common
from attractor.probes.entropy import clean_entropy
from attractor.probes.stats import auroc, ratio, spearman, summarize
from attractor.sampler import SamplerConfig, reverse_process

SAMPLER_T_MIN = SamplerConfig().t_min


def _check_shared(cfg) -> None:
    check(cfg.num_sequences >= 1, "num_sequences", "must be at least 1")
    check(cfg.reverse_steps >= 1, "reverse_steps", "must be at least 1")
    check(cfg.examples >= 0, "examples", "must be >= 0")


@dataclass(frozen=True)
class DeterministicConfig:
    """Experiment 1: corrupt exactly a fraction of the tokens, greedy dynamics from a fixed t."""

    LEVEL: ClassVar[str] = "fraction"

    fractions: tuple[float, ...] = setting((0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
                                           help="corrupted fractions of the real tokens")
    t: float = setting(0.25, help="the fixed diffusion time the reverse process starts from")
    num_sequences: int = setting(64, help="training and test sequences each, at most")
    reverse_steps: int = setting(100, help="steps of the reverse process")
    examples: int = setting(3, help="sequences per split kept as examples for the report")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.fractions, "fractions")
        common.check_times((self.t,), "t")
        check(self.t > SAMPLER_T_MIN, "t", f"must exceed the sampler's t_min {SAMPLER_T_MIN}")
        _check_shared(self)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.fractions

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(steps=self.reverse_steps, dynamics="greedy", final="ancestral")

    def corrupt(self, x0, mask, levels, schedule, vocab_size, generator) -> torch.Tensor:
        """x0, mask (R, L), levels (R,) fractions -> z_t (R, L) with exactly n changed tokens."""
        n = torch.floor(levels * mask.sum(-1).to(torch.float64) + 0.5).clamp_min(1).long()
        return corrupt_exactly(x0, n, vocab_size, generator, allowed=mask)

    def start_times(self, levels: torch.Tensor) -> torch.Tensor:
        return torch.full_like(levels, self.t)


@dataclass(frozen=True)
class StochasticConfig:
    """Experiment 2: corrupt by eq. (1) at t, the ancestral reverse process from that t."""

    LEVEL: ClassVar[str] = "t"

    times: tuple[float, ...] = setting((0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
                                       help="noise levels t of the corruption and the start")
    num_sequences: int = setting(64, help="training and test sequences each, at most")
    reverse_steps: int = setting(100, help="steps of the reverse process")
    examples: int = setting(3, help="sequences per split kept as examples for the report")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.times, "times")
        check(min(self.times) > SAMPLER_T_MIN, "times",
              f"must exceed the sampler's t_min {SAMPLER_T_MIN}")
        _check_shared(self)

    @property
    def levels(self) -> tuple[float, ...]:
        return self.times

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(steps=self.reverse_steps, dynamics="ancestral", final="ancestral")

    def corrupt(self, x0, mask, levels, schedule, vocab_size, generator) -> torch.Tensor:
        """x0, mask (R, L), levels (R,) times -> z_t ~ q(z_t | x0) (R, L); pads stay."""
        zt = q_xt(x0, schedule.alpha(levels), vocab_size, generator)
        return torch.where(mask, zt, x0)

    def start_times(self, levels: torch.Tensor) -> torch.Tensor:
        return levels


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


def _denoise(denoiser, zt: torch.Tensor, t0: torch.Tensor, run, config,
             generator: torch.Generator, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse processes over all rows in chunks, and start-time token entropies (R, L)."""
    rows = common.chunk_rows(config.common.max_batch, zt.shape[1], run.vocab_size)
    gen = common.device_generator(generator, run.device)
    outs, ents = [], []
    bar = tqdm(total=len(zt), desc=f"recovery from {config.LEVEL}", unit="seq",
               disable=not progress, dynamic_ncols=True)
    for sl in common.chunks(len(zt), rows):
        z, t = zt[sl].to(run.device), t0[sl].to(run.device)
        ents.append(clean_entropy(denoiser, z, t, run.schedule).cpu())
        outs.append(reverse_process(denoiser, z, t, run.schedule, gen, config.sampler).cpu())
        bar.update(sl.stop - sl.start)
    bar.close()
    return torch.cat(outs), torch.cat(ents)


def _row_records(batch: Batch, zt, x_hat, ent, level_name: str, vocab_size: int) -> list:
    """Per-(sequence, level) numbers for the JSON-lines file."""
    x0, mask = batch.x0, batch.mask
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
    cols = {k: v.tolist() for k, v in cols.items()}
    return [{"split": split, "id": int(i), level_name: float(lv), **{k: cols[k][r] for k in cols}}
            for r, (split, i, lv) in enumerate(zip(batch.split, batch.ids, batch.level))]


def _column(rows: list, key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=np.float64)


def _split_stats(sel: list, rng: np.random.Generator, n: int) -> dict:
    col = {k: _column(sel, k) for k in ("recovery", "n_recovered", "n_changed", "preserved",
                                        "exact", "entropy_recovered_sum",
                                        "entropy_unrecovered_sum")}
    misses = col["n_changed"] - col["n_recovered"]
    return {
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


def _token_histograms(batch: Batch, zt, x_hat, ent, config, vocab_size: int) -> dict:
    """Normalised start-time entropies of recovered vs unrecovered tokens, per level and split
    (Fig. 3B)."""
    changed = changed_positions(batch.x0, zt, batch.mask)
    hit = changed & (x_hat == batch.x0)
    h = ent / math.log(vocab_size)
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
    """Experiment 1 or 2 (by ``config``) on training and held-out sequences of ``run``.

    All (sequence, level) pairs of both splits form one batch, cut into chunks of ``max_batch``
    rows, so the denoiser's forward passes dominate the cost.
    """
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    start = time.perf_counter()
    batch = _batch(run, config, generator)
    zt = config.corrupt(batch.x0, batch.mask, batch.level, run.schedule, run.vocab_size,
                        generator)
    x_hat, ent = _denoise(denoiser, zt, config.start_times(batch.level), run, config, generator,
                          progress)
    rows = _row_records(batch, zt, x_hat, ent, config.LEVEL, run.vocab_size)
    return common.ProbeResult(
        config=config, summary=_summaries(rows, config, rng), rows=rows,
        timing=denoiser.timing(time.perf_counter() - start, len(zt)), vocab_size=run.vocab_size,
        histograms=_token_histograms(batch, zt, x_hat, ent, config, run.vocab_size),
        examples=_examples(batch, zt, x_hat, config.examples),
        notes={"level_name": config.LEVEL, "entropy_taken_from": "p_theta(x0 | z_t) at the "
               "start time t of the reverse process, eq. (13)"})
