"""Conditional entropy, eq. (13), and the probe that compares it across sets of sequences.

    H(x0^l | z_t) = - sum_k p_theta(x0^l = k | z_t) log p_theta(x0^l = k | z_t)     (nats)

per token l, with p_theta = softmax of the denoiser's logits; normalised by log K it lies in
[0, 1]. The sequence conditional entropy is the sum over the real (non-pad) positions (Fig. 4).
In the memorisation regime it vanishes on training sequences (paper §4).

The probe feeds CLEAN sequences conditioned on sigma(t) for each t of a grid (default t = 1e-5, as
in Experiment 3) and compares training with held-out sequences: the distributions of their
entropies, and how well low entropy and the other membership scores of
:mod:`attractor.probes.membership` (the loss, Min-K%, zlib-calibrated loss) pick out the
training sequences.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from attractor import softmax_rows, streams
from attractor.config import check, setting
from attractor.families import family_of
from attractor.probes import common, items
from attractor.probes.membership import best_score, evaluate, min_k, zlib_bits
from attractor.probes.stats import auroc_interval, summarize


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Eq. (13): (..., K) logits (any float dtype) -> (...) float64 entropy of softmax(logits) in
    nats, computed in row chunks without K-wide temporaries (:func:`attractor.softmax_rows.entropy`).
    """
    return softmax_rows.entropy(logits)


def sequence_entropy(token_h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of token entropies over real positions: (B, L) float64, (B, L) bool -> (B,) float64."""
    return (token_h * mask).sum(dim=-1)


@dataclass(frozen=True)
class EntropyConfig:
    """Conditional entropy and the other membership scores of training vs held-out sequences."""

    entropy_times: tuple[float, ...] = setting((1e-5,), help="times t at which the clean "
                                               "sequences are conditioned on sigma(t); the "
                                               "first is the one the membership scores use")
    num_sequences: int = setting(256, help="training and test sequences each, at most")
    nelbo_samples: int = setting(8, help="diffusion times per sequence of its Monte-Carlo "
                                 "NELBO (the loss and zlib membership scores)")
    min_k: float = setting(0.2, help="Min-K%% score: the fraction k of lowest token "
                           "log-probabilities averaged")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.entropy_times, "entropy_times")
        check(self.num_sequences >= 1, "num_sequences", "must be at least 1")
        check(self.nelbo_samples >= 1, "nelbo_samples", "must be at least 1")
        check(0.0 < self.min_k <= 1.0, "min_k", "must lie in (0, 1]")


@dataclass(frozen=True)
class Plan:
    """The sequences of both splits, one item each, and their stream keys (for the NELBO's
    noise: the probe's base key, the tokens and which repeat of them in the split)."""

    split: list[str]                    # (N,)
    ids: torch.Tensor                   # (N,) int64 pool ids
    sequences: torch.Tensor             # (N, L) int64
    mask: torch.Tensor                  # (N, L) bool
    keys: list[int]
    chunk: int                          # sequences per batch (each repeated nelbo_samples times)


def plan(run, config: EntropyConfig, generator: torch.Generator) -> Plan:
    base = streams.draw_base(generator)
    parts = common.pick_sequences(run, config.num_sequences, generator)
    split = [s for s, (ids, _, _) in parts.items() for _ in range(len(ids))]
    seqs = torch.cat([p[1] for p in parts.values()])
    mask = torch.cat([p[2] for p in parts.values()])
    keys, seen = [], {}
    for r in range(len(split)):
        content = streams.digest(seqs[r][mask[r]])
        repeat = seen.setdefault((split[r], content), [0])
        keys.append(streams.item_key(base, content, repeat[0]))
        repeat[0] += 1
    rows = common.chunk_rows(config.common.max_batch, seqs.shape[1], run.vocab_size)
    return Plan(split, torch.cat([p[0] for p in parts.values()]), seqs, mask, keys,
                max(1, rows // config.nelbo_samples))


def _scores(denoiser, x: torch.Tensor, m: torch.Tensor, run, config: EntropyConfig,
            keys: list[int]) -> dict[str, torch.Tensor]:
    """Per sequence of one chunk (B of them): mean token entropy at every time (B, T), and the
    membership quantities at the first time: Min-K% log-probability, NELBO in total."""
    rows = common.chunk_rows(config.common.max_batch, x.shape[1], run.vocab_size)
    ops = family_of(run)
    n_real = m.sum(-1).clamp_min(1)
    per_t, min_k_logprob = [], None
    for j, t in enumerate(config.entropy_times):
        h, log_p = ops.clean_scores(denoiser, x, m, t, rows)
        per_t.append(sequence_entropy(h, m) / n_real)
        if j == 0:
            min_k_logprob = min_k(log_p, m, config.min_k)
    nelbo = ops.nelbo(denoiser, x, m, config.nelbo_samples, streams.RowStreams(keys, x.device))
    return {"token_entropy": torch.stack(per_t, -1).cpu(), "min_k_logprob": min_k_logprob.cpu(),
            "nelbo": nelbo.cpu()}


def compute(run, config: EntropyConfig, plan: Plan, items: list[int], denoiser) -> list[dict]:
    """One record per sequence: its entropies at every time and its membership quantities."""
    idx = torch.tensor(items, dtype=torch.long)
    x, m = plan.sequences[idx], plan.mask[idx]
    v = _scores(denoiser, x.to(run.device), m.to(run.device), run, config,
                [plan.keys[i] for i in items])
    return [{"split": plan.split[i], "id": int(plan.ids[i]), "n_real": int(m[j].sum()),
             "token_entropy": v["token_entropy"][j].tolist(),
             "min_k_logprob": float(v["min_k_logprob"][j]), "nelbo": float(v["nelbo"][j]),
             "zlib_bits": float(zlib_bits(run.dataset.decode(x[j])))}
            for j, i in enumerate(items)]


def _per_split(records: list, config: EntropyConfig) -> dict:
    """The records of each split as arrays (both splits present, maybe empty)."""
    T = len(config.entropy_times)
    out = {}
    for split in ("train", "test"):
        sel = [r for r in records if r["split"] == split]
        out[split] = {"ids": np.array([r["id"] for r in sel], dtype=np.int64),
                      "n_real": np.array([r["n_real"] for r in sel], dtype=np.int64),
                      "token_entropy": np.array([r["token_entropy"] for r in sel],
                                                dtype=np.float64).reshape(len(sel), T),
                      **{k: np.array([r[k] for r in sel], dtype=np.float64)
                         for k in ("min_k_logprob", "nelbo", "zlib_bits")}}
    return out


def _membership(per_split: dict, run, rng, n_boot: int) -> dict:
    """Each membership score of training (members) vs test sequences, with intervals."""
    oriented = {split: membership_scores(v) for split, v in per_split.items()}
    evaluations = {name: evaluate(oriented["train"][name], oriented["test"][name], rng, n_boot)
                   for name in oriented["train"]}
    return {"scores": evaluations, "best": best_score(evaluations)}


def membership_scores(v: dict) -> dict[str, np.ndarray]:
    """Scores oriented so that higher means member (see attractor.probes.membership)."""
    return {"entropy": -v["token_entropy"][:, 0], "nelbo": -v["nelbo"] / v["n_real"],
            "min_k": v["min_k_logprob"], "zlib": -v["nelbo"] / v["zlib_bits"]}


def finish(run, config: EntropyConfig, plan: Plan, records: list, rng: np.random.Generator,
           timing) -> common.ProbeResult:
    """Conditional entropy (eq. 13) and membership scores of training and test sequences."""
    per_split = _per_split(records, config)
    n = config.common.bootstrap
    summary = [_summary(t, per_split, j, rng, n) for j, t in enumerate(config.entropy_times)]
    membership = _membership(per_split, run, rng, n)
    return common.ProbeResult(
        config, summary, _rows(per_split, config), timing(), run.vocab_size,
        histograms={str(t): common.histograms({k: v["token_entropy"][:, j] * v["n_real"]
                                                for k, v in per_split.items()})
                    for j, t in enumerate(config.entropy_times)},
        notes={"input": "clean sequences conditioned on sigma(t); entropy in nats, eq. (13)",
               "membership": membership})


def _summary(t: float, per_split: dict, j: int, rng, n: int) -> dict:
    entry: dict = {"t": t}
    for name, v in per_split.items():
        tok = v["token_entropy"][:, j]
        entry[name] = summarize(tok * v["n_real"], rng, n)
        entry[f"{name}_token"] = summarize(tok, rng, n)
    # LOW entropy as the membership signal (memorisation): AUROC of -H, train above test.
    entry["membership_auroc"] = auroc_interval(-per_split["train"]["token_entropy"][:, j],
                                               -per_split["test"]["token_entropy"][:, j], rng, n)
    return entry


def _rows(per_split: dict, config: EntropyConfig) -> list:
    rows = []
    for name, v in per_split.items():
        for i in range(len(v["ids"])):
            row = {"split": name, "id": int(v["ids"][i]), "n_real": int(v["n_real"][i]),
                   "min_k_logprob": float(v["min_k_logprob"][i]), "nelbo": float(v["nelbo"][i]),
                   "zlib_bits": float(v["zlib_bits"][i])}
            for j, t in enumerate(config.entropy_times):
                tok = float(v["token_entropy"][i, j])
                rows.append({**row, "t": t, "mean_token_entropy": tok,
                             "sequence_entropy": tok * row["n_real"]})
    return rows


def run_entropy(run, config: EntropyConfig, generator: torch.Generator,
         progress: bool = True) -> common.ProbeResult:
    """The whole probe in this process, in memory (``attractor.probes.registry.run_probe``
    also shards it over processes and keeps its finished items on disk)."""
    return items.execute("entropy", sys.modules[__name__], run, config, generator, progress)
