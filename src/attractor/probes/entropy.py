"""Conditional entropy, eq. (13), and the probe that compares it across sets of sequences.

    H(x0^l | z_t) = - sum_k p_theta(x0^l = k | z_t) log p_theta(x0^l = k | z_t)     (nats)

per token l, with p_theta = softmax of the denoiser's logits; normalised by log K it lies in
[0, 1]. The sequence conditional entropy is the sum over the real (non-pad) positions (Fig. 4).
In the memorisation regime it vanishes on training sequences (paper §4).

The probe feeds CLEAN sequences conditioned on sigma(t) for each t of a grid (default t = 1e-5, as
in Experiment 3) and compares training with held-out sequences.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from attractor import softmax_rows
from attractor.config import check, setting
from attractor.probes import common
from attractor.probes.stats import auroc_interval, summarize
from attractor.schedule import sigma_from_alpha


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Eq. (13): (..., K) logits (any float dtype) -> (...) float64 entropy of softmax(logits) in
    nats, computed in row chunks without K-wide temporaries (:func:`attractor.softmax_rows.entropy`).
    """
    return softmax_rows.entropy(logits)


def sequence_entropy(token_h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of token entropies over real positions: (B, L) float64, (B, L) bool -> (B,) float64."""
    return (token_h * mask).sum(dim=-1)


def clean_entropy(denoiser, x: torch.Tensor, t: torch.Tensor | float, schedule) -> torch.Tensor:
    """Token entropies of p_theta(x0 | z_t = x) with the clean ids conditioned on sigma(t).

    x (B, L) int64, t (B,) or scalar -> (B, L) float64.
    """
    t = torch.as_tensor(t, dtype=torch.float64, device=x.device).expand(x.shape[0])
    sigma = sigma_from_alpha(schedule.alpha(t)).to(torch.float32)
    return token_entropy(denoiser(x, sigma))


@dataclass(frozen=True)
class EntropyConfig:
    """Sequence conditional entropy of training vs held-out sequences at the times given."""

    entropy_times: tuple[float, ...] = setting((1e-5,), help="times t at which the clean "
                                               "sequences are conditioned on sigma(t)")
    num_sequences: int = setting(256, help="training and test sequences each, at most")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        common.check_times(self.entropy_times, "entropy_times")
        check(self.num_sequences >= 1, "num_sequences", "must be at least 1")


def _entropies(denoiser, seqs: torch.Tensor, mask: torch.Tensor, times, run,
               max_batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) sequence entropies and (N, T) mean token entropies (nats), batched over both."""
    N, T = len(seqs), len(times)
    rows = common.chunk_rows(max_batch, seqs.shape[1], run.vocab_size)
    x = seqs.repeat_interleave(T, dim=0)                                   # (N*T, L)
    m = mask.repeat_interleave(T, dim=0)
    t = torch.tensor(times, dtype=torch.float64).repeat(N)                # (N*T,)
    seq_h, tok_mean = [], []
    for sl in common.chunks(len(x), rows):
        h = clean_entropy(denoiser, x[sl].to(run.device), t[sl].to(run.device), run.schedule)
        mm = m[sl].to(run.device)
        seq_h.append(sequence_entropy(h, mm).cpu())
        tok_mean.append((sequence_entropy(h, mm) / mm.sum(-1).clamp_min(1)).cpu())
    return torch.cat(seq_h).view(N, T).numpy(), torch.cat(tok_mean).view(N, T).numpy()


def _summary(t: float, per_split: dict, j: int, rng, config: EntropyConfig,
             log_k: float) -> dict:
    n = config.common.bootstrap
    entry: dict = {"t": t}
    for name, (_, seq_h, tok_h) in per_split.items():
        entry[name] = summarize(seq_h[:, j], rng, n)
        entry[f"{name}_token"] = summarize(tok_h[:, j], rng, n)
        entry[f"{name}_token_normalised"] = summarize(tok_h[:, j] / log_k, rng, n)
    # LOW entropy as the membership signal (memorisation): AUROC of -H, train above test.
    entry["membership_auroc"] = auroc_interval(-per_split["train"][1][:, j],
                                               -per_split["test"][1][:, j], rng, n)
    return entry


def run_entropy(run, config: EntropyConfig, generator: torch.Generator,
                progress: bool = True) -> common.ProbeResult:
    """Sequence conditional entropy (eq. 13) of training and test sequences of ``run``."""
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    start = time.perf_counter()
    splits = common.pick_sequences(run, config.num_sequences, generator)
    per_split = {}
    for name, (ids, seqs, mask) in common.progress_items(splits, progress, "entropy"):
        per_split[name] = (ids, *_entropies(denoiser, seqs, mask, config.entropy_times, run,
                                            config.common.max_batch))
    log_k = math.log(run.vocab_size)
    summary, rows, hists = [], [], {}
    for j, t in enumerate(config.entropy_times):
        summary.append(_summary(t, per_split, j, rng, config, log_k))
        rows += [{"split": name, "id": int(i), "t": t, "sequence_entropy": float(h),
                  "mean_token_entropy": float(n)}
                 for name, (ids, seq_h, tok_h) in per_split.items()
                 for i, h, n in zip(ids.tolist(), seq_h[:, j], tok_h[:, j])]
        hists[str(t)] = common.histograms({n: v[1][:, j] for n, v in per_split.items()})
    timing = denoiser.timing(time.perf_counter() - start, sum(len(v[0]) for v in per_split.values()))
    return common.ProbeResult(config, summary, rows, timing, run.vocab_size, histograms=hists,
                              notes={"input": "clean sequences conditioned on sigma(t); entropy "
                                              "in nats, eq. (13)"})
