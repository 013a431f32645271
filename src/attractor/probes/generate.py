"""Experiment 3 (paper Figs. 4-5): samples from the uniform prior, their conditional entropy,
and the ground truth the paper lacks: are they copies of training sequences?

1. Generate from the uniform prior with the reverse process from t0 = 1 (:func:`sampler.generate`).
2. Sequence conditional entropy (eq. 13) at t = 1e-5 of the samples and of training sequences
   (the clean ids conditioned on sigma(t)); the entropy gap = mean(generated) - mean(train).
3. For each sample, the nearest training sequence by Hamming distance over the positions that are
   real (not padding) in either sequence: an exact copy (distance 0), a near copy (distance at
   most ``near_copy`` times that length) or novel; on the ``synthetic`` corpus, whether the
   sample (cut at its first EOS) is a sentence of the grammar. Held-out test sequences give the
   reference: how far unseen valid sequences lie from the training set.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from attractor.errors import require
from attractor.probes import common
from attractor.probes.entropy import clean_entropy, sequence_entropy
from attractor.probes.stats import auroc, bootstrap_difference, summarize
from attractor.sampler import SamplerConfig, generate

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
    num_samples: int = 64
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=256))
    t: float = 1e-5                     # time at which sequence entropies are taken
    num_reference: int = 1000           # training (and test) sequences for the entropy histogram
    near_copy: float = 0.1              # near copy: distance <= near_copy * compared positions
    max_batch: int = 256
    bootstrap: int = 1000

    def validate(self) -> None:
        require(self.num_samples >= 1, "--num-samples must be at least 1")
        self.sampler.validate()
        common.check_times((self.t,), "--t")
        require(self.num_reference >= 1, "--num-reference must be at least 1")
        require(0.0 <= self.near_copy < 1.0, "--near-copy must lie in [0, 1)")
        require(self.max_batch >= 1, "--max-batch must be at least 1")
        require(self.bootstrap >= 10, "--bootstrap needs at least 10 resamples")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerateResult:
    config: GenerateConfig
    summary: dict
    rows: list                          # one dict per generated sample
    histograms: dict
    timing: common.Timing
    vocab_size: int
    name: str = "generate"

    def to_dict(self) -> dict:
        return {"probe": self.name, "config": self.config.to_dict(), "vocab_size": self.vocab_size,
                "entropy_input": "clean sequences conditioned on sigma(t), eq. (13), nats",
                "summary": self.summary, "histograms": self.histograms,
                "timing": self.timing.to_dict()}


def _sample(denoiser, run, config: GenerateConfig, generator, progress: bool) -> torch.Tensor:
    L = run.dataset.sequences.shape[1]
    rows = common.chunk_rows(config.max_batch, L, run.vocab_size)
    gen = common.device_generator(generator, run.device)
    out = []
    for sl in tqdm(list(common.chunks(config.num_samples, rows)), desc="generate",
                          unit="chunk", disable=not progress, dynamic_ncols=True):
        out.append(generate(denoiser, sl.stop - sl.start, L, run.vocab_size, run.schedule, gen,
                            config.sampler, device=run.device).cpu())
    return torch.cat(out)


def _seq_entropy(denoiser, run, x: torch.Tensor, mask: torch.Tensor, config) -> np.ndarray:
    rows = common.chunk_rows(config.max_batch, x.shape[1], run.vocab_size)
    out = [sequence_entropy(clean_entropy(denoiser, x[sl].to(run.device), config.t, run.schedule),
                            mask[sl].to(run.device)).cpu() for sl in common.chunks(len(x), rows)]
    return torch.cat(out).numpy()


def _categories(exact, near, grammatical) -> list[str]:
    out = []
    for e, n, g in zip(exact, near, grammatical):
        if e:
            out.append("exact_copy")
        elif n:
            out.append("near_copy")
        else:
            out.append("novel" if g is None else
                       "novel_grammatical" if g else "novel_ungrammatical")
    return out


def _grammar(run, samples: torch.Tensor) -> list:
    """Grammaticality of each sample on the synthetic corpus, None elsewhere."""
    if run.config.data.corpus != "synthetic":
        return [None] * len(samples)
    from attractor.data.grammar import is_grammatical

    k = run.config.data.synthetic_words
    return [bool(is_grammatical(run.dataset.sentence(s), k)) for s in samples]


def _fractions(values: list) -> dict:
    return {c: sum(v == c for v in values) / len(values) for c in CATEGORIES}


def run_generate(run, config: GenerateConfig, generator: torch.Generator,
                 progress: bool = True) -> GenerateResult:
    """Experiment 3 on ``run`` (see the module docstring)."""
    config.validate()
    denoiser = common.TimedDenoiser(run.denoiser(), run.device)
    rng = common.numpy_generator(generator)
    start = time.perf_counter()
    samples = _sample(denoiser, run, config, generator, progress)               # (G, L)
    s_mask = samples != run.dataset.pad_id
    ref = common.pick_sequences(run, config.num_reference, generator)
    h = {"generated": _seq_entropy(denoiser, run, samples, s_mask, config)}
    for split, (_, seqs, mask) in ref.items():
        h[split] = _seq_entropy(denoiser, run, seqs, mask, config)
    masks = run.dataset.loss_mask
    near_i, d, n = nearest_neighbours(samples, s_mask, run.train_sequences, masks[run.train_ids])
    _, d_test, _ = nearest_neighbours(samples, s_mask, run.test_sequences, masks[run.test_ids])
    _, d_ref, n_ref = nearest_neighbours(ref["test"][1], ref["test"][2], run.train_sequences,
                                         masks[run.train_ids])
    exact, near = (d == 0).tolist(), (d <= config.near_copy * n).tolist()
    grammatical = _grammar(run, samples)
    category = _categories(exact, near, grammatical)
    test_grammatical = _grammar(run, ref["test"][1])
    n_boot = config.bootstrap
    summary = {
        "entropy": {k: summarize(v, rng, n_boot) for k, v in h.items()},
        "entropy_gap": dict(zip(("mean", "lo", "hi"),
                                bootstrap_difference(h["generated"], h["train"], n_boot, rng))),
        "auroc_generated_vs_train": auroc(h["generated"], h["train"]),
        "categories": _fractions(category),
        "exact_copy": summarize(np.array(exact, dtype=float), rng, n_boot),
        "near_or_exact_copy": summarize(np.array(near, dtype=float), rng, n_boot),
        "matches_test_sequence": float((d_test == 0).double().mean()),
        "nearest_train_distance": summarize((d / n.clamp_min(1)).numpy(), rng, n_boot),
        "test_nearest_train_distance": summarize((d_ref / n_ref.clamp_min(1)).numpy(), rng, n_boot),
        "grammatical": None if grammatical[0] is None else float(np.mean(grammatical)),
        "test_grammatical": None if test_grammatical[0] is None else float(np.mean(test_grammatical)),
    }
    rows = [{"sample": i, "text": run.dataset.decode(samples[i]), "n_real": int(s_mask[i].sum()),
             "sequence_entropy": float(h["generated"][i]), "nearest_train_id":
             int(run.train_ids[near_i[i]]), "distance": int(d[i]), "compared": int(n[i]),
             "nearest_test_distance": int(d_test[i]), "exact_copy": exact[i], "near_copy": near[i],
             "grammatical": grammatical[i], "category": category[i]} for i in range(len(samples))]
    hists = {"sequence_entropy": common.histograms(h),
             "nearest_train_distance": common.histograms(
                 {"generated": (d / n.clamp_min(1)).numpy(),
                  "test": (d_ref / n_ref.clamp_min(1)).numpy()}, lo=0.0, hi=1.0)}
    timing = denoiser.timing(time.perf_counter() - start, len(samples))
    return GenerateResult(config, summary, rows, hists, timing, run.vocab_size)
