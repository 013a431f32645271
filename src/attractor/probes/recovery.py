"""Token recovery, eq. (12), and the retrieval experiments 1 and 2 (paper Figs. 1-3).

    R(x, x_hat) = (1 / |C|) sum_{l in C} delta(x_hat^l, x^l),   C = {l real : z_t^l != x^l}

the fraction of the positions that the corruption changed which the reverse process returns to
the original token (per sequence; NaN when nothing changed). Corruption touches real tokens only.

Experiment 1 (deterministic retrieval, Fig. 1): exactly n = max(1, round(f * real tokens))
positions are changed (``corrupt_exactly``) for each fraction f of a grid, and greedy dynamics run
from a FIXED diffusion time t (default 0.25): the basin curves of train vs test sequences.

Experiment 2 (stochastic retrieval, Figs. 2-3): z_t ~ q(z_t | x) of eq. (1) for each t of a grid
and the ancestral reverse process from that same t. Beside recovery it records the conditional
entropy (eq. 13) of the recovered and unrecovered tokens, taken from the denoiser's prediction at
the START of the reverse process, p_theta(x0 | z_t) at t (Fig. 3B).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from attractor.errors import require
from attractor.forward import corrupt_exactly, q_xt
from attractor.probes import common
from attractor.probes.entropy import clean_entropy
from attractor.probes.stats import auroc, ratio, summarize
from attractor.sampler import SamplerConfig, reverse_process

EXPERIMENTS = ("deterministic", "stochastic")
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_TIMES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def changed_positions(x0: torch.Tensor, zt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """C of eq. (12): (B, L) bool, real positions where z_t differs from x0."""
    return (zt != x0) & mask


def token_recovery(x0: torch.Tensor, x_hat: torch.Tensor, changed: torch.Tensor) -> torch.Tensor:
    """Eq. (12) per sequence: (B, L) ids, (B, L) ids, (B, L) bool -> (B,) float64, NaN if |C| = 0."""
    hits = ((x_hat == x0) & changed).sum(-1).to(torch.float64)
    return hits / changed.sum(-1).to(torch.float64)       # 0 / 0 = NaN where nothing changed


@dataclass(frozen=True)
class RecoveryConfig:
    """One retrieval experiment: levels are corrupted fractions (Exp. 1) or times t (Exp. 2)."""

    experiment: str = "stochastic"
    levels: tuple[float, ...] = DEFAULT_TIMES
    t: float = 0.25                     # Exp. 1 only: the fixed diffusion time
    num_sequences: int = 64
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    max_batch: int = 256
    bootstrap: int = 1000
    examples: int = 3                   # sequences per split shown in the HTML page

    def validate(self) -> None:
        require(self.experiment in EXPERIMENTS,
                f"unknown experiment {self.experiment!r}; choose from {', '.join(EXPERIMENTS)}")
        flag = "--fractions" if self.experiment == "deterministic" else "--times"
        common.check_times(self.levels, flag)
        common.check_times((self.t,), "--t")
        self.sampler.validate()
        t_low = min(self.levels) if self.experiment == "stochastic" else self.t
        require(t_low > self.sampler.t_min,
                f"noise level {t_low} must exceed the sampler's t_min {self.sampler.t_min}")
        require(self.num_sequences >= 1, "--num-sequences must be at least 1")
        require(self.max_batch >= 1, "--max-batch must be at least 1")
        require(self.bootstrap >= 10, "--bootstrap needs at least 10 resamples")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def level_name(self) -> str:
        return "fraction" if self.experiment == "deterministic" else "t"


def deterministic_config(fractions=DEFAULT_FRACTIONS, t: float = 0.25, steps: int = 100,
                         **kw) -> RecoveryConfig:
    """Experiment 1: greedy posterior-argmax dynamics from a fixed t."""
    sampler = SamplerConfig(steps=steps, dynamics="greedy", final="ancestral")
    return RecoveryConfig("deterministic", tuple(fractions), t, sampler=sampler, **kw)


def stochastic_config(times=DEFAULT_TIMES, steps: int = 100, **kw) -> RecoveryConfig:
    """Experiment 2: the ancestral reverse process from each t."""
    sampler = SamplerConfig(steps=steps, dynamics="ancestral", final="ancestral")
    return RecoveryConfig("stochastic", tuple(times), sampler=sampler, **kw)


@dataclass(frozen=True)
class RecoveryResult:
    config: RecoveryConfig
    summary: list                       # one dict per level: train / test statistics, AUROC
    rows: list                          # one dict per (split, sequence, level)
    examples: list                      # token ids of a few sequences, for the HTML page
    histograms: dict                    # Exp. 2: token entropies of (un)recovered tokens
    timing: common.Timing
    vocab_size: int

    @property
    def name(self) -> str:
        return f"recovery_{self.config.experiment}"

    def to_dict(self) -> dict:
        note = ("entropy of p_theta(x0 | z_t) at the start time t of the reverse process, eq. (13)"
                if self.config.experiment == "stochastic" else None)
        return {"probe": self.name, "experiment": self.config.experiment,
                "level_name": self.config.level_name, "config": self.config.to_dict(),
                "vocab_size": self.vocab_size, "entropy_taken_from": note,
                "summary": self.summary, "histograms": self.histograms,
                "timing": self.timing.to_dict()}


def corrupt(x0: torch.Tensor, mask: torch.Tensor, levels: torch.Tensor, config: RecoveryConfig,
            schedule, vocab_size: int, generator: torch.Generator) -> torch.Tensor:
    """Corrupted copies: x0, mask (R, L) and per-row levels (R,) -> z_t (R, L) int64."""
    if config.experiment == "deterministic":
        real = mask.sum(-1).to(torch.float64)
        n = torch.floor(levels * real + 0.5).clamp_min(1).to(torch.long)
        return corrupt_exactly(x0, n, vocab_size, generator, allowed=mask)
    zt = q_xt(x0, schedule.alpha(levels), vocab_size, generator)
    return torch.where(mask, zt, x0)                          # pads are never corrupted


def _denoise(denoiser, zt: torch.Tensor, t0: torch.Tensor, run, config: RecoveryConfig,
             generator: torch.Generator, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse processes over all rows in chunks; also start-time token entropies (R, L)."""
    rows = common.chunk_rows(config.max_batch, zt.shape[1], run.vocab_size)
    gen = common.device_generator(generator, run.device)
    outs, ents = [], []
    bar = tqdm(total=len(zt), desc=f"recovery {config.experiment}", unit="seq",
                      disable=not progress, dynamic_ncols=True)
    for sl in common.chunks(len(zt), rows):
        z, t = zt[sl].to(run.device), t0[sl].to(run.device)
        if config.experiment == "stochastic":
            ents.append(clean_entropy(denoiser, z, t, run.schedule).cpu())
        outs.append(reverse_process(denoiser, z, t, run.schedule, gen, config.sampler).cpu())
        bar.update(sl.stop - sl.start)
    bar.close()
    ent = torch.cat(ents) if ents else torch.full(zt.shape, float("nan"), dtype=torch.float64)
    return torch.cat(outs), ent


def _row_records(split, ids, levels, x0, zt, x_hat, mask, ent, level_name, vocab_size) -> list:
    """Per-(sequence, level) numbers for the JSON-lines file."""
    changed = changed_positions(x0, zt, mask)
    rec = token_recovery(x0, x_hat, changed)
    same = (x_hat == x0)
    kept = mask & ~changed
    hit, miss = changed & same, changed & ~same
    h = ent / math.log(vocab_size)                                        # normalised
    cols = {
        "n_real": mask.sum(-1), "n_changed": changed.sum(-1), "n_recovered": hit.sum(-1),
        "recovery": rec, "preserved": (kept & same).sum(-1) / kept.sum(-1).clamp_min(1),
        "exact": (same | ~mask).all(-1),
        "entropy_recovered_sum": (h * hit).sum(-1), "entropy_unrecovered_sum": (h * miss).sum(-1),
        "sequence_entropy": (ent * mask).sum(-1),
    }
    cols = {k: v.tolist() for k, v in cols.items()}
    return [{"split": split, "id": int(i), level_name: float(lv),
             **{k: cols[k][r] for k in cols}} for r, (i, lv) in enumerate(zip(ids, levels))]


def _token_histograms(x0, zt, x_hat, mask, ent, vocab_size) -> dict:
    """Normalised start-time entropies of recovered vs unrecovered tokens (Fig. 3B)."""
    changed = changed_positions(x0, zt, mask)
    h = ent / math.log(vocab_size)
    hit = changed & (x_hat == x0)
    return common.histograms({"recovered": h[hit].numpy(), "unrecovered": h[changed & ~hit].numpy()},
                             lo=0.0, hi=1.0)


def _summaries(rows: list, config: RecoveryConfig, rng: np.random.Generator) -> list:
    """Per level: bootstrap means and 95% intervals of each split, and the train-vs-test AUROC."""
    name, n = config.level_name, config.bootstrap
    out = []
    for level in config.levels:
        entry = {name: level}
        per_seq = {}
        for split in ("train", "test"):
            sel = [r for r in rows if r["split"] == split and r[name] == level]
            col = {k: np.array([np.nan if r[k] is None else r[k] for r in sel], dtype=np.float64)
                   for k in ("recovery", "n_recovered", "n_changed", "preserved", "exact",
                             "entropy_recovered_sum", "entropy_unrecovered_sum")}
            per_seq[split] = col["recovery"]
            stats = {
                "recovery": summarize(col["recovery"], rng, n),
                "token_recovery": summarize(np.stack([col["n_recovered"], col["n_changed"]], 1),
                                            rng, n, ratio),
                "preserved": summarize(col["preserved"], rng, n),
                "exact": summarize(col["exact"], rng, n),
            }
            if config.experiment == "stochastic":
                misses = col["n_changed"] - col["n_recovered"]
                stats["entropy_recovered"] = summarize(
                    np.stack([col["entropy_recovered_sum"], col["n_recovered"]], 1), rng, n, ratio)
                stats["entropy_unrecovered"] = summarize(
                    np.stack([col["entropy_unrecovered_sum"], misses], 1), rng, n, ratio)
            entry[split] = stats
        train, test = (v[~np.isnan(v)] for v in (per_seq["train"], per_seq["test"]))
        entry["auroc_train_vs_test"] = auroc(train, test)
        out.append(entry)
    return out


def _examples(split_of_row, ids, lv, x0, zt, x_hat, mask, per_split: int, levels: int) -> list:
    """Token ids of the first ``per_split`` sequences of each split, at every level."""
    out = []
    for split in ("train", "test"):
        first = split_of_row.index(split)
        for r in range(first, first + per_split * levels):
            if r >= len(split_of_row) or split_of_row[r] != split:
                break
            n = int(mask[r].sum())
            out.append({"split": split, "id": int(ids[r]), "level": float(lv[r]),
                        "x0": x0[r].tolist(), "zt": zt[r].tolist(), "x_hat": x_hat[r].tolist(),
                        "mask": mask[r].tolist(), "n_real": n})
    return out


def run_recovery(run, config: RecoveryConfig, generator: torch.Generator,
                 progress: bool = True) -> RecoveryResult:
    """Experiment 1 or 2 on training and held-out sequences of ``run`` (see the module docstring).

    All (sequence, level) pairs of both splits form one batch, cut into chunks of
    ``max_batch`` rows, so the denoiser's forward passes dominate the cost.
    """
    config.validate()
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    start = time.perf_counter()
    levels = torch.tensor(config.levels, dtype=torch.float64)
    F = len(levels)
    parts = common.pick_sequences(run, config.num_sequences, generator)
    split_of_row = [s for s, (ids, _, _) in parts.items() for _ in range(len(ids) * F)]
    ids = torch.cat([p[0] for p in parts.values()]).repeat_interleave(F)          # (R,)
    x0 = torch.cat([p[1] for p in parts.values()]).repeat_interleave(F, dim=0)    # (R, L)
    mask = torch.cat([p[2] for p in parts.values()]).repeat_interleave(F, dim=0)  # (R, L)
    lv = levels.repeat(len(ids) // F)                                             # (R,)
    zt = corrupt(x0, mask, lv, config, run.schedule, run.vocab_size, generator)
    t0 = torch.full_like(lv, config.t) if config.experiment == "deterministic" else lv
    x_hat, ent = _denoise(denoiser, zt, t0, run, config, generator, progress)
    rows = []
    for split in ("train", "test"):
        sel = torch.tensor([s == split for s in split_of_row])
        rows += _row_records(split, ids[sel].tolist(), lv[sel].tolist(), x0[sel], zt[sel],
                             x_hat[sel], mask[sel], ent[sel], config.level_name, run.vocab_size)
    hists = {}
    if config.experiment == "stochastic":
        for j, level in enumerate(config.levels):
            hists[str(level)] = {
                split: _token_histograms(*(a[sel] for a in (x0, zt, x_hat, mask, ent)),
                                         run.vocab_size)
                for split in ("train", "test")
                for sel in [torch.tensor([s == split for s in split_of_row]) & (lv == level)]}
    examples = _examples(split_of_row, ids, lv, x0, zt, x_hat, mask, config.examples, F)
    timing = denoiser.timing(time.perf_counter() - start, len(zt))
    return RecoveryResult(config, _summaries(rows, config, rng), rows, examples, hists, timing,
                          run.vocab_size)
