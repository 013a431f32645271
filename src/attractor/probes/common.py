"""What the probes share: their common settings and result type, choosing sequences, batching,
timing, the bootstrap generator and histograms.

Probes batch over sequences AND noise levels: their work items (:mod:`attractor.probes.items`)
are cut into chunks of at most ``max_batch`` rows (fewer when two float32 copies of a chunk's
logits would exceed a memory budget) and each chunk is one reverse process.
:class:`TimedDenoiser` measures the share of wall time spent in the denoiser's forward passes,
which every probe reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from attractor.config import check, setting, to_dict

# Bytes two float32 (rows, L, K) tensors of one reverse step may take: the logits and a copy.
LOGITS_BUDGET_BYTES = 2 * 1024**3


def check_times(times: Iterable[float], path: str) -> None:
    """Every noise level lies in (0, 1] and none repeats; a ConfigError naming ``path``."""
    times = tuple(times)
    check(len(times) > 0, path, "needs at least one value")
    bad = [t for t in times if not (0.0 < t <= 1.0)]
    check(not bad, path, f"has {', '.join(map(str, bad))} outside (0, 1]")
    check(len(set(times)) == len(times), path, f"repeats a value: {list(times)}")


@dataclass(frozen=True)
class CommonSettings:
    """How any probe batches its work and how many bootstrap resamples its intervals use."""

    max_batch: int = setting(256, help="rows per denoiser call (fewer if the logits of a "
                             "chunk would exceed 2 GiB)")
    bootstrap: int = setting(1000, help="bootstrap resamples of the 95% intervals")

    def __post_init__(self) -> None:
        check(self.max_batch >= 1, "max_batch", f"must be at least 1; got {self.max_batch}")
        check(self.bootstrap >= 10, "bootstrap", f"needs at least 10 resamples; got "
              f"{self.bootstrap}")


@dataclass(frozen=True)
class ProbeResult:
    """What every probe returns: JSON (``to_dict``), per-row records and a few examples."""

    config: Any
    summary: Any                        # per level (a list) or one dict
    rows: list                          # one dict per (split, sequence, level) or sample
    timing: Timing
    vocab_size: int
    histograms: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)        # token ids, for reports
    notes: dict = field(default_factory=dict)           # further top-level JSON entries

    def to_dict(self) -> dict:
        return {"config": to_dict(self.config), "vocab_size": self.vocab_size,
                **self.notes, "summary": self.summary, "histograms": self.histograms,
                "timing": self.timing.to_dict()}


def chunk_rows(max_batch: int, length: int, vocab_size: int,
               budget: int = LOGITS_BUDGET_BYTES) -> int:
    """Rows per chunk: ``max_batch``, or fewer so that two float32 (rows, L, K) tensors (the
    logits and one temporary) fit in ``budget``; the samplers and entropies need no more."""
    return max(1, min(max_batch, budget // (2 * 4 * length * vocab_size)))


def chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    for lo in range(0, n, size):
        yield slice(lo, min(lo + size, n))


@dataclass(frozen=True)
class Timing:
    wall_s: float
    forward_s: float
    forward_calls: int
    sequences: int                      # work items: sequence x level rows, samples, references

    def to_dict(self) -> dict:
        d = asdict(self)
        d["forward_fraction"] = self.forward_s / self.wall_s if self.wall_s > 0 else None
        d["sequences_per_s"] = self.sequences / self.wall_s if self.wall_s > 0 else None
        return d


class TimedDenoiser:
    """Wraps ``denoiser(zt, sigma) -> logits`` and accumulates the time spent inside it."""

    def __init__(self, denoiser, device: torch.device | str = "cpu"):
        self.denoiser = denoiser
        self.device = torch.device(device)
        self.seconds = 0.0
        self.calls = 0
        self.takes_rows = getattr(denoiser, "takes_rows", False)     # see sampler.logits_at

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, zt: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        self._sync()
        start = time.perf_counter()
        out = self.denoiser(zt, sigma, **kwargs)                    # rows=, see takes_rows
        self._sync()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def numpy_generator(generator: torch.Generator) -> np.random.Generator:
    """A numpy generator seeded by one draw from ``generator`` (for bootstrap resampling)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return np.random.default_rng(seed)


def pick_sequences(run, num: int, generator: torch.Generator) -> dict:
    """Random training and test sequences of ``run``, without replacement.

    Returns {"train": (ids, sequences, mask), "test": (...)} with ids (n,) int64 pool ids,
    sequences (n, L) int64 and mask (n, L) bool (False on pads); n = min(num, split size).
    """
    out = {}
    for name, ids in (("train", run.train_ids), ("test", run.test_ids)):
        order = torch.randperm(len(ids), generator=generator)[:num]
        chosen = ids[order]
        out[name] = (chosen, run.dataset.sequences[chosen], run.dataset.loss_mask[chosen])
    return out


def histograms(groups: dict, bins: int = 40, lo: float | None = None,
               hi: float | None = None) -> dict:
    """Counts of each group's values over shared bin edges (for re-rendering figures)."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items()}
    finite = [f for f in (a[np.isfinite(a)] for a in arrays.values()) if len(f)]
    allv = np.concatenate(finite) if finite else np.zeros(1)
    lo = float(allv.min()) if lo is None else lo
    hi = float(allv.max()) if hi is None else hi
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    return {"edges": edges.tolist(),
            **{k: np.histogram(a[np.isfinite(a)], edges)[0].tolist() for k, a in arrays.items()}}
