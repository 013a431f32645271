"""Experiment 3 (paper Figs. 4-5): samples from the uniform prior, their conditional entropy,
and the ground truth the paper lacks: are they copies of training sequences?

1. Generate from the uniform prior with the reverse process from t0 = 1 (:func:`sampler.generate`).
2. In pad mode each sample is cut at its first EOS (what follows becomes padding, as in the
   training sequences). Sequence conditional entropy (eq. 13) at t = 1e-5 of the samples and of
   training sequences (the clean ids conditioned on sigma(t)), summed over the real (non-pad)
   positions of both; the entropy gap = mean(generated) - mean(train).
3. For each sample, the nearest training sequence by Hamming distance over the positions that are
   real (not padding) in either sequence: an exact copy (distance 0), a near copy (distance at
   most ``near_copy`` times that length) or novel; where the corpus has a checker of valid
   sentences (the synthetic grammar, given to the probe as ``run.checker``), whether the sample
   cut at its first EOS is valid. Held-out test sequences give the reference: how far unseen
   valid sequences lie from the training set.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from attractor import streams
from attractor.config import check, setting
from attractor.families import family_of
from attractor.probes import common, items
from attractor.probes.entropy import sequence_entropy
from attractor.probes.stats import auroc, difference, ks_distance, summarize
from attractor.sampler import FINAL_STEPS

CATEGORIES = ("exact_copy", "near_copy", "novel_grammatical", "novel_ungrammatical", "novel")


def nearest_neighbours(queries: torch.Tensor, q_mask: torch.Tensor, keys: torch.Tensor,
                       k_mask: torch.Tensor, max_elements: int = 2**24
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest key of each query by Hamming distance over positions real in either sequence.

    Args:
        queries, keys: (G, L), (N, L) int64 ids; q_mask, k_mask: matching bool real-position masks.
        max_elements: bound on the (G, chunk, L) comparison tensor.
    Returns:
        index (G,) int64 of the nearest key (first on ties), its distance (G,) int64 and the
        number of positions compared (G,) int64.
    """
    G, L = queries.shape
    best_d = torch.full((G,), torch.iinfo(torch.int64).max, dtype=torch.int64)
    best_i = torch.zeros(G, dtype=torch.int64)
    best_n = torch.zeros(G, dtype=torch.int64)
    step = max(1, max_elements // max(1, G * L))
    for sl in common.chunks(len(keys), step):
        union = q_mask[:, None, :] | k_mask[None, sl, :]                  # (G, n, L)
        d = ((queries[:, None, :] != keys[None, sl, :]) & union).sum(-1)  # (G, n)
        d_min, i_min = d.min(dim=1)
        better = d_min < best_d
        best_d = torch.where(better, d_min, best_d)
        best_i = torch.where(better, i_min + sl.start, best_i)
        best_n = torch.where(better, union.sum(-1).gather(1, i_min[:, None])[:, 0], best_n)
    return best_i, best_d, best_n


@dataclass(frozen=True)
class GenerateConfig:
    """Experiment 3: samples from the prior, their entropy and how close they are to training."""

    num_samples: int = setting(64, help="samples generated from the uniform prior")
    reverse_steps: int = setting(256, help="steps of the reverse process from t = 1")
    final: str = setting("ancestral", help="final denoising step: ancestral | greedy | none")
    entropy_t: float = setting(1e-5, help="time t at which sequence entropies are taken")
    num_reference: int = setting(1000, help="training and test sequences whose entropies the "
                                 "samples are compared with")
    near_copy: float = setting(0.1, help="near copy: Hamming distance <= this fraction of the "
                               "compared positions")
    common: common.CommonSettings = setting(help="batching and bootstrap",
                                            factory=common.CommonSettings)

    def __post_init__(self) -> None:
        check(self.num_samples >= 1, "num_samples", "must be at least 1")
        check(self.reverse_steps >= 1, "reverse_steps", "must be at least 1")
        check(self.final in FINAL_STEPS, "final", f"is {self.final!r}, not one of "
              f"{', '.join(FINAL_STEPS)}")
        common.check_times((self.entropy_t,), "entropy_t")
        check(self.num_reference >= 1, "num_reference", "must be at least 1")
        check(0.0 <= self.near_copy < 1.0, "near_copy", "must lie in [0, 1)")



@dataclass(frozen=True)
class Plan:
    """Items 0 .. G-1 are the samples (stream key: the probe's base key and the sample's index);
    items G .. are the reference sequences whose entropies the samples are compared with."""

    num_samples: int
    splits: dict                        # {"train": (ids, sequences, mask), "test": (...)}
    keys: list[int]                     # one per item (the references draw nothing)
    chunk: int

    def reference(self, item: int) -> tuple[str, int]:
        """(split, row) of reference item ``item``."""
        row = item - self.num_samples
        n_train = len(self.splits["train"][0])
        return ("train", row) if row < n_train else ("test", row - n_train)


def plan(run, config: GenerateConfig, generator: torch.Generator) -> Plan:
    base = streams.draw_base(generator)
    splits = common.pick_sequences(run, config.num_reference, generator)
    refs = sum(len(ids) for ids, _, _ in splits.values())
    keys = [streams.item_key(base, j) for j in range(config.num_samples)] + [0] * refs
    L = run.dataset.sequences.shape[1]
    return Plan(config.num_samples, splits, keys,
                common.chunk_rows(config.common.max_batch, L, run.vocab_size))


def _sample(denoiser, run, config: GenerateConfig, keys: list[int]) -> torch.Tensor:
    """Samples from the prior, one per key: (n, L) int64."""
    L = run.dataset.sequences.shape[1]
    return family_of(run).generate(denoiser, len(keys), L, streams.RowStreams(keys, run.device),
                                   config.reverse_steps, config.final, run.device).cpu()


def _seq_entropy(denoiser, run, x: torch.Tensor, mask: torch.Tensor, config) -> np.ndarray:
    """(N,) sequence entropies (eq. 13, or the leave-one-out analogue for masked models)."""
    if len(x) == 0:
        return np.zeros(0)
    rows = common.chunk_rows(config.common.max_batch, x.shape[1], run.vocab_size)
    ops, out = family_of(run), []
    for sl in common.chunks(len(x), rows):
        xs, m = x[sl].to(run.device), mask[sl].to(run.device)
        out.append(sequence_entropy(ops.clean_scores(denoiser, xs, m, config.entropy_t, rows)[0],
                                    m).cpu())
    return torch.cat(out).numpy()


def compute(run, config: GenerateConfig, plan: Plan, items: list[int], denoiser) -> list[dict]:
    """Samples (with their entropies) and reference sequences' entropies, one record each."""
    samples = [i for i in items if i < plan.num_samples]
    out = {}
    if samples:
        # In pad mode whatever follows a sample's first EOS is not part of it (the model may
        # never have been trained there): compare and score the sentence, as training sequences.
        x = run.dataset.canonical(_sample(denoiser, run, config, [plan.keys[i] for i in samples]))
        h = _seq_entropy(denoiser, run, x, x != run.dataset.pad_id, config)
        out.update({i: {"tokens": x[j].tolist(), "sequence_entropy": float(h[j])}
                    for j, i in enumerate(samples)})
    refs = [i for i in items if i >= plan.num_samples]
    if refs:
        where = [plan.reference(i) for i in refs]
        x = torch.stack([plan.splits[s][1][r] for s, r in where])
        m = torch.stack([plan.splits[s][2][r] for s, r in where])
        h = _seq_entropy(denoiser, run, x, m, config)
        out.update({i: {"sequence_entropy": float(h[j])} for j, i in enumerate(refs)})
    return [out[i] for i in items]


def _categories(exact, near, valid) -> list[str]:
    out = []
    for e, n, g in zip(exact, near, valid):
        if e:
            out.append("exact_copy")
        elif n:
            out.append("near_copy")
        else:
            out.append("novel" if g is None else
                       "novel_grammatical" if g else "novel_ungrammatical")
    return out


def _valid(run, samples: torch.Tensor) -> list:
    """Whether each sample (its first sentence) is valid by the corpus's own checker, if it has
    one (the synthetic grammar); None for every sample otherwise."""
    if run.checker is None:
        return [None] * len(samples)
    return [bool(run.checker(run.dataset.sentence(s))) for s in samples]


def _fraction(values: list) -> float | None:
    return None if not values or values[0] is None else float(np.mean(values))


def _entropy_summary(h: dict, lengths: dict, rng, n_boot: int) -> dict:
    """Sequence and per-token entropies of each group, and generated-minus-train gaps."""
    tok = {k: v / np.maximum(lengths[k], 1) for k, v in h.items()}
    return {
        "entropy": {k: summarize(v, rng, n_boot) for k, v in h.items()},
        "token_entropy": {k: summarize(v, rng, n_boot) for k, v in tok.items()},
        "sequence_entropy_gap": difference(h["generated"], h["train"], rng, n_boot),
        "token_entropy_gap": difference(tok["generated"], tok["train"], rng, n_boot),
        "auroc_generated_vs_train": auroc(h["generated"], h["train"]),
        "ks_generated_vs_train": ks_distance(h["generated"], h["train"]) if len(h["train"])
        else None,
    }


@dataclass(frozen=True)
class Grading:
    """How each of G samples relates to the training and held-out sequences."""

    nearest: torch.Tensor              # (G,) int64 pool id of the nearest training sequence
    distance: torch.Tensor             # (G,) int64 Hamming distance to it
    compared: torch.Tensor             # (G,) int64 positions compared (real in either)
    test_distance: torch.Tensor        # (G,) int64 distance to the nearest held-out sequence
    exact: list                        # (G,) bool
    near: list                         # (G,) bool: distance <= near_copy * compared
    valid: list                        # (G,) bool, or None where the corpus cannot tell
    category: list                     # (G,) one of CATEGORIES


def _nearest(samples, s_mask, run, ids) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pool id, distance and compared positions of each sample's nearest sequence among
    ``ids``; -1, -1, 0 when ``ids`` is empty (the user gave no such sequences)."""
    if len(ids) == 0:
        none = torch.full((len(samples),), -1, dtype=torch.long)
        return none, none.clone(), torch.zeros_like(none)
    i, d, n = nearest_neighbours(samples, s_mask, run.dataset.sequences[ids],
                                 run.dataset.loss_mask[ids])
    return ids[i], d, n


def _grade(run, samples: torch.Tensor, s_mask: torch.Tensor, near_copy: float) -> Grading:
    nearest, d, n = _nearest(samples, s_mask, run, run.train_ids)
    _, d_test, _ = _nearest(samples, s_mask, run, run.test_ids)
    exact, near = (d == 0).tolist(), ((d >= 0) & (d <= near_copy * n)).tolist()
    valid = _valid(run, samples)
    return Grading(nearest, d, n, d_test, exact, near, valid,
                   _categories(exact, near, valid))


def _reference_distance(run, ref: dict) -> np.ndarray:
    """(n,) Hamming distance / compared positions from held-out sequences to the training set:
    how far unseen valid sequences lie from it (empty without either set)."""
    if len(run.train_ids) == 0 or len(ref["test"][0]) == 0:
        return np.zeros(0)
    _, d, n = nearest_neighbours(ref["test"][1], ref["test"][2], run.train_sequences,
                                 run.dataset.loss_mask[run.train_ids])
    return (d / n.clamp_min(1)).numpy()


def _summary(g: Grading, h: dict, lengths: dict, ref: dict, run, rng, n_boot: int) -> dict:
    known = len(run.train_ids) > 0                 # copies need the training set
    grade = (lambda v: summarize(np.asarray(v, dtype=float), rng, n_boot)) if known else \
        (lambda v: summarize(np.zeros(0), rng, n_boot))
    return {
        **_entropy_summary(h, lengths, rng, n_boot),
        "categories": {c: sum(v == c for v in g.category) / len(g.category) for c in CATEGORIES},
        "exact_copy": grade(g.exact),
        "near_or_exact_copy": grade(g.near),
        "matches_test_sequence": float((g.test_distance == 0).double().mean())
        if len(run.test_ids) else None,
        "nearest_train_distance": grade((g.distance / g.compared.clamp_min(1)).numpy()),
        "test_nearest_train_distance": summarize(ref["distance"], rng, n_boot),
        "grammatical": _fraction(g.valid),
        "test_grammatical": _fraction(_valid(run, ref["splits"]["test"][1])),
    }


def _rows(run, samples: torch.Tensor, g: Grading, h: dict, lengths: dict, ref: dict) -> list:
    """One row per sample ("generated"), then one per reference sequence ("train", "test")."""
    rows = [{"split": "generated", "sample": i, "text": run.dataset.decode(samples[i]),
             "n_real": int(lengths["generated"][i]), "sequence_entropy": float(h["generated"][i]),
             "nearest_train_id": int(g.nearest[i]), "distance": int(g.distance[i]),
             "compared": int(g.compared[i]), "nearest_test_distance": int(g.test_distance[i]),
             "exact_copy": g.exact[i], "near_copy": g.near[i], "grammatical": g.valid[i],
             "category": g.category[i]} for i in range(len(samples))]
    return rows + [{"split": split, "id": int(i), "n_real": int(m), "sequence_entropy": float(e)}
                   for split, (ids, _, _) in ref["splits"].items()
                   for i, m, e in zip(ids.tolist(), lengths[split], h[split])]


def finish(run, config: GenerateConfig, plan: Plan, records: list, rng: np.random.Generator,
           timing) -> common.ProbeResult:
    """Experiment 3 from the samples and entropies of every item (see the module docstring)."""
    G = plan.num_samples
    samples = torch.tensor([r["tokens"] for r in records[:G]], dtype=torch.long)
    s_mask = samples != run.dataset.pad_id                                      # (G, L)
    ref = {"splits": plan.splits, "distance": _reference_distance(run, plan.splits)}
    h = {"generated": np.array([r["sequence_entropy"] for r in records[:G]], dtype=np.float64)}
    lengths = {"generated": s_mask.sum(-1).numpy()}
    refs = records[G:]
    for split, (_, _, mask) in plan.splits.items():
        h[split] = np.array([r["sequence_entropy"] for r in refs[:len(mask)]], dtype=np.float64)
        refs = refs[len(mask):]
        lengths[split] = mask.sum(-1).numpy()
    g = _grade(run, samples, s_mask, config.near_copy)
    summary = _summary(g, h, lengths, ref, run, rng, config.common.bootstrap)
    hists = {"sequence_entropy": common.histograms(h),
             "nearest_train_distance": common.histograms(
                 {"generated": (g.distance / g.compared.clamp_min(1)).numpy(),
                  "test": ref["distance"]}, lo=0.0, hi=1.0)}
    return common.ProbeResult(config, summary, _rows(run, samples, g, h, lengths, ref),
                              timing(), run.vocab_size, histograms=hists,
                              notes={"entropy_input": "clean sequences conditioned on "
                                                      "sigma(entropy_t), eq. (13), nats"})


def run_generate(run, config: GenerateConfig, generator: torch.Generator,
         progress: bool = True) -> common.ProbeResult:
    """The whole probe in this process, in memory (``attractor.probes.registry.run_probe``
    also shards it over processes and keeps its finished items on disk)."""
    return items.execute("generate", sys.modules[__name__], run, config, generator, progress)
