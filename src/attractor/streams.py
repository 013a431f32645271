"""Keyed random streams: the randomness of one probe item, whatever batch, process or restart
it runs in.

Each work item of a probe (a sequence at one noise level, a generated sample, a sequence whose
NELBO is estimated) draws every random number it uses from its own stream, keyed by the probe's
seed and the item's identity (:func:`item_key`). Its result is then the same whether it runs
alone, in any chunk of a batch, on any rank of a distributed probe or after a restart, which is
what lets probes shard their work and resume (:mod:`attractor.probes.items`).

:class:`RowStreams` holds one stream per row of a batch; a draw takes the next ``n`` numbers of
every row's stream. A row's numbers therefore depend only on how many it drew before, so each
caller draws the same amount per row whatever the other rows of the batch do (the samplers draw
a step's numbers even where a row has nothing left to change).

The sampling code takes either a ``torch.Generator`` (one stream for the whole batch: training,
and callers that do not shard) or a :class:`RowStreams`; :func:`uniform`, :func:`integers` and
:func:`repeat` hide the difference.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

BLOCK = 4096                 # numbers drawn from a row's generator at a time
KEY_BITS = 63


def item_key(*parts: int) -> int:
    """A 63-bit stream key mixed from integers (the probe's seed draw, the item's identity); the
    number of parts is mixed in too, so (k,) and (k, 0) differ."""
    words = [len(parts), *(int(p) % 2**64 for p in parts)]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> (64 - KEY_BITS)


def digest(tokens: torch.Tensor) -> int:
    """A 63-bit identity of a token sequence (any shape of ids; hashed as int64)."""
    data = tokens.detach().to(torch.int64).cpu().contiguous().numpy().tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


class RowStreams:
    """One random stream per row of a batch, each a numpy PCG64 generator seeded by all 63 bits
    of its key (torch's CPU generator would keep only 32 of them: two items in 2**32 would share
    a stream, a collision likely among 10**5 items).

    Numbers are drawn on the CPU in float64 and moved to ``device``, so a stream is the same on
    every device. A row's stream is the concatenation of its generator's draws of ``BLOCK`` (or
    more) numbers; the sizes depend only on the sequence of draws, never on the other rows.
    """

    def __init__(self, keys, device: torch.device | str = "cpu"):
        self.keys = [int(k) for k in keys]
        self.device = torch.device(device)
        self._generators = [np.random.Generator(np.random.PCG64(k)) for k in self.keys]
        self._buffer = torch.empty((len(self.keys), 0), dtype=torch.float64)
        self._pos = 0

    def __len__(self) -> int:
        return len(self.keys)

    def _refill(self, n: int) -> None:
        rest = self._buffer[:, self._pos:]
        size = max(n - rest.shape[1], BLOCK)
        fresh = np.stack([g.random(size) for g in self._generators]) if self._generators \
            else np.empty((0, size))
        fresh = torch.from_numpy(fresh)                                     # float64
        self._buffer, self._pos = torch.cat([rest, fresh], dim=1), 0

    def uniform(self, n: int) -> torch.Tensor:
        """The next ``n`` numbers of every row's stream: (B, n) float64 in [0, 1) on the device."""
        if self._pos + n > self._buffer.shape[1]:
            self._refill(n)
        out = self._buffer[:, self._pos:self._pos + n]
        self._pos += n
        return out.to(self.device)

    def children(self, count: int) -> RowStreams:
        """``count`` new streams per row, keyed (row key, j): B * count rows, row-major (row b's
        children are rows b * count ... b * count + count - 1)."""
        return RowStreams([item_key(k, j) for k in self.keys for j in range(count)], self.device)


def _rows(source: RowStreams, shape: tuple[int, ...]) -> int:
    assert len(shape) == 2 and shape[0] == len(source), \
        f"keyed streams draw (rows, n) with {len(source)} rows; asked for {tuple(shape)}"
    return shape[1]


def uniform(source, shape: tuple[int, ...], device, dtype: torch.dtype = torch.float32
            ) -> torch.Tensor:
    """U[0, 1) numbers of ``shape``: from a generator (``dtype``), or one row per stream of a
    :class:`RowStreams` (float64)."""
    if isinstance(source, RowStreams):
        return source.uniform(_rows(source, shape))
    return torch.rand(shape, generator=source, device=device, dtype=dtype)


def integers(source, low: int, high: int, shape: tuple[int, ...], device) -> torch.Tensor:
    """Uniform int64 ids in [low, high) of ``shape`` (from keyed streams: low + floor(u (high -
    low)) with float64 u, exact for any vocabulary below 2**31)."""
    if isinstance(source, RowStreams):
        u = source.uniform(_rows(source, shape))
        return (low + torch.floor(u * (high - low)).long()).clamp_max(high - 1)
    return torch.randint(low, high, shape, generator=source, device=device)


def repeat(source, count: int):
    """The source for a batch whose rows are each of ``source``'s rows repeated ``count`` times
    (``repeat_interleave``): a generator stays itself; keyed streams get ``count`` children."""
    return source.children(count) if isinstance(source, RowStreams) else source


def draw_base(generator: torch.Generator) -> int:
    """One 62-bit integer drawn from ``generator``: the base of a probe's item keys."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())
