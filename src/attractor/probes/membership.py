"""Membership scores of sequences and how well each tells training sequences from unseen ones.

A membership score is a number per sequence, oriented so that HIGHER means "more likely a
training sequence". The scores, as membership-inference tools define their analogues:

    entropy    minus the mean conditional entropy per token (eq. 13) of the clean sequence at
               t -> 0: the paper's probe (memorised sequences have entropy ~ 0)
    nelbo      minus the Monte-Carlo NELBO per token (eq. 3): the loss attack
    min_k      the mean of the lowest k% token log-probabilities log x_theta[x^l] of the clean
               sequence at t -> 0 (Min-K% Prob, Shi et al. 2024)
    zlib       minus the NELBO of the whole sequence divided by its zlib-compressed length in
               bits (Carlini et al. 2021): the loss calibrated by how compressible the text is
    recovery   token recovery (eq. 12) of the sequence after stochastic retrieval at t

Each is judged by the ROC AUC and the true-positive rate at low false-positive rates (1% and
0.1%), with bootstrap intervals. With n non-members the smallest false-positive rate a sample
resolves is 1/n; a TPR at a lower target is the TPR at FPR = 0 and is marked so.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from attractor.probes.stats import auroc, bootstrap, interval

SCORES = ("entropy", "nelbo", "min_k", "zlib", "recovery")
FPRS = (0.01, 0.001)


def min_k(log_probs: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """Mean of the lowest ceil(k n) of each row's n real token log-probabilities.

    log_probs (B, L) float64 log x_theta[x^l], mask (B, L) bool -> (B,) float64.
    """
    n = mask.sum(-1)
    lowest = torch.ceil(k * n.to(torch.float64)).clamp_min(1).long()             # (B,)
    ordered = torch.where(mask, log_probs, torch.inf).sort(dim=-1).values        # real first
    take = torch.arange(log_probs.shape[-1], device=log_probs.device)[None] < lowest[:, None]
    return torch.where(take, ordered, 0.0).sum(-1) / lowest


def zlib_bits(text: str) -> int:
    """Length in bits of the zlib-compressed UTF-8 text (level 9)."""
    return 8 * len(zlib.compress(text.encode("utf-8"), 9))


def roc(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC of scores (higher = positive): FPR and TPR (each (T,), from (0, 0) up), one point per
    distinct threshold."""
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]          # end of each tie group
    tpr = np.r_[0.0, np.cumsum(y)[last] / max(len(pos), 1)]
    fpr = np.r_[0.0, np.cumsum(1 - y)[last] / max(len(neg), 1)]
    return fpr, tpr


def tpr_at(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """The largest TPR over thresholds whose FPR is at most ``fpr``."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    f, t = roc(pos, neg)
    return float(t[f <= fpr + 1e-12].max())


def evaluate(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator, n: int) -> dict:
    """AUROC and TPR at each of FPRS with 95% intervals over sequences (both sets resampled),
    the FPR the non-members resolve, and the ROC for figures (thinned to <= 200 points)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    out = {"auroc": interval(auroc(pos, neg), bootstrap(auroc, [pos, neg], n, rng)),
           "members": len(pos), "nonmembers": len(neg),
           "smallest_fpr": 1.0 / len(neg) if len(neg) else None}
    for target in FPRS:
        reps = bootstrap(lambda a, b, f=target: tpr_at(a, b, f), [pos, neg], n, rng)
        out[f"tpr_at_fpr_{target:g}"] = {**interval(tpr_at(pos, neg, target), reps),
                                         "at_fpr_zero": len(neg) * target < 1}
    if len(pos) and len(neg):
        f, t = roc(pos, neg)
        keep = np.unique(np.linspace(0, len(f) - 1, min(len(f), 200)).round().astype(int))
        out["roc"] = {"fpr": f[keep].tolist(), "tpr": t[keep].tolist()}
    return out


def best_score(evaluations: dict[str, dict]) -> dict:
    """The score with the highest AUROC, and those whose interval overlaps its (not told apart)."""
    defined = {k: v["auroc"] for k, v in evaluations.items() if v["auroc"]["mean"] is not None}
    if not defined:
        return {"best": None, "indistinguishable": []}
    best = max(defined, key=lambda k: defined[k]["mean"])
    lo = defined[best]["lo"] if defined[best]["lo"] is not None else -math.inf
    close = [k for k, v in defined.items() if k != best and (v["hi"] or math.inf) >= lo]
    return {"best": best, "auroc": defined[best]["mean"], "indistinguishable": sorted(close)}
