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

import time
from dataclasses import dataclass

import numpy as np
import torch

from attractor import softmax_rows
from attractor.config import check, setting
from attractor.families import family_of
from attractor.probes import common
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


def _scores(denoiser, seqs: torch.Tensor, mask: torch.Tensor, run, config: EntropyConfig,
            generator: torch.Generator) -> dict[str, np.ndarray]:
    """Per sequence (N of them): mean token entropy at every time (N, T), and the membership
    quantities at the first time: Min-K% log-probability, NELBO per token and in total."""
    rows = common.chunk_rows(config.common.max_batch, seqs.shape[1], run.vocab_size)
    ops = family_of(run)
    T, out = len(config.entropy_times), {"token_entropy": [], "min_k_logprob": [], "nelbo": []}
    if len(seqs) == 0:                  # a split the user gave no sequences for
        return {"token_entropy": np.zeros((0, T)), "min_k_logprob": np.zeros(0),
                "nelbo": np.zeros(0)}
    for sl in common.chunks(len(seqs), max(1, rows // config.nelbo_samples)):
        x, m = seqs[sl].to(run.device), mask[sl].to(run.device)
        n_real = m.sum(-1).clamp_min(1)
        per_t = []
        for j, t in enumerate(config.entropy_times):
            h, log_p = ops.clean_scores(denoiser, x, m, t, rows)
            per_t.append(sequence_entropy(h, m) / n_real)
            if j == 0:
                out["min_k_logprob"].append(min_k(log_p, m, config.min_k).cpu())
        out["token_entropy"].append(torch.stack(per_t, -1).cpu())
        out["nelbo"].append(ops.nelbo(denoiser, x, m, config.nelbo_samples, generator).cpu())
    cat = {k: torch.cat(v).numpy() for k, v in out.items()}
    assert cat["token_entropy"].shape == (len(seqs), T)
    return cat


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


def run_entropy(run, config: EntropyConfig, generator: torch.Generator,
                progress: bool = True) -> common.ProbeResult:
    """Conditional entropy (eq. 13) and membership scores of training and test sequences."""
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    gen = common.device_generator(generator, run.device)
    start = time.perf_counter()
    splits = common.pick_sequences(run, config.num_sequences, generator)
    per_split = {}
    for name, (ids, seqs, mask) in common.progress_items(splits, progress, "entropy"):
        v = _scores(denoiser, seqs, mask, run, config, gen)
        v["ids"], v["n_real"] = ids.numpy(), mask.sum(-1).numpy()
        v["zlib_bits"] = np.array([zlib_bits(run.dataset.decode(s)) for s in seqs], float)
        per_split[name] = v
    n = config.common.bootstrap
    summary = [_summary(t, per_split, j, rng, n) for j, t in enumerate(config.entropy_times)]
    timing = denoiser.timing(time.perf_counter() - start, sum(len(v["ids"])
                                                              for v in per_split.values()))
    return common.ProbeResult(
        config, summary, _rows(per_split, config), timing, run.vocab_size,
        histograms={str(t): common.histograms({k: v["token_entropy"][:, j] * v["n_real"]
                                                for k, v in per_split.items()})
                    for j, t in enumerate(config.entropy_times)},
        notes={"input": "clean sequences conditioned on sigma(t); entropy in nats, eq. (13)",
               "membership": _membership(per_split, run, rng, n)})


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
