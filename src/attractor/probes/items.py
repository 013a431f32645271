"""Running a probe as independent work items: in one process, over the ranks of a
``torch.distributed`` job (``torchrun``), and across restarts.

A probe (an entry of :data:`attractor.probes.registry.PROBES`) is three functions:

    plan(run, config, generator) -> a plan with ``keys`` (one random-stream key per item,
                                    :mod:`attractor.streams`) and ``chunk`` (items per batch)
    compute(run, config, plan, items, denoiser) -> one JSON record per item
    finish(run, config, plan, records, rng, timing) -> ProbeResult

Every rank makes the same plan from the same seed. Because an item draws its randomness from its
own keyed stream, its record does not depend on which rank runs it, in which chunk, or when; so
the items can be dealt out to any number of processes and the merged result equals a
single-process run's.

The plan cuts the items into fixed chunks (one denoiser batch each), and rank r takes every
world-size-th unfinished chunk, so an item always runs in the same batch: results are identical
to the last bit for any number of processes. With a :class:`Store`
(``DIR/probes/partial/<name>/``), each rank appends every finished chunk to its own JSON-lines
shard (``rank-<r>.jsonl``) as it goes. A restarted probe, with the same or another number of
processes, skips the chunks the shards hold; rank 0 merges the shards in plan order and
finishes. ``plan.json`` fingerprints the settings, seed and items, so a restart with
other settings is refused instead of mixing results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attractor import artifacts
from attractor.config import to_dict
from attractor.errors import UserError
from attractor.io import append_jsonl, make_dir, write_json
from attractor.probes import common


@dataclass(frozen=True)
class World:
    """This process's place in a distributed probe (rank 0 of 1 without one)."""

    rank: int = 0
    size: int = 1

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()


def fingerprint(name: str, config, keys: list[int], run) -> str:
    """What must match for shards to be merged: the probe, its settings, its items' keys (seed
    and sequences), and the checkpoint or model probed."""
    source = {k: v for k, v in (run.source or {}).items()       # not where files or layers
              if k not in ("members", "nonmembers", "placement")}   # are: their contents count
    text = json.dumps({"probe": name, "config": to_dict(config), "step": run.step,
                       "source": source, "precision": run.precision,
                       "keys": hashlib.sha256(json.dumps(keys).encode()).hexdigest()},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Store:
    """The shards of one probe's unfinished work: ``DIR/probes/partial/<name>/``."""

    def __init__(self, directory: str | Path, name: str, replace: bool = False):
        self.name = name
        self.path = Path(directory) / "probes" / "partial" / name
        self.replace = replace          # discard work of other settings instead of refusing

    def exists(self) -> bool:
        return self.path.is_dir()

    def discard(self) -> None:
        """Remove this probe's shards (and partial/ once it holds no other probe's)."""
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            self.path.parent.rmdir()
        except OSError:                 # missing, or another probe's work is still there
            pass

    def open(self, mark: str, world: World) -> None:
        """Rank 0 writes the plan's fingerprint where there is none (or, with ``replace``,
        first discards work of another plan or damaged work); then every rank checks it against
        the saved one. Work with other settings is refused, never mixed."""
        plan_file = self.path / "plan.json"
        if world.rank == 0 and self.replace and self.exists() and not self._intact(mark):
            self.discard()
        if world.rank == 0 and not plan_file.is_file():
            make_dir(self.path)
            write_json(plan_file, {"kind": "probe-shards", "probe": self.name,
                                   "fingerprint": mark})
        world.barrier()
        if self._read(lambda: artifacts.shard_plan(plan_file))["fingerprint"] != mark:
            raise UserError(f"{self.path} holds unfinished work of probe {self.name} with other "
                            "settings, seed or checkpoint; run it again with those to finish "
                            "it, or pass --overwrite to discard it")

    def _intact(self, mark: str) -> bool:
        """Whether the saved work is of this plan and every shard loads."""
        try:
            if artifacts.shard_plan(self.path / "plan.json")["fingerprint"] != mark:
                return False
            for shard in self.path.glob("rank-*.jsonl"):
                artifacts.probe_shard(shard)
        except UserError:
            return False
        return True

    def _read(self, load):
        try:
            return load()
        except UserError as err:
            raise UserError(f"{err}; pass --overwrite to discard {self.path}") from None

    def done(self) -> dict[int, tuple[dict, dict]]:
        """item -> (record, timing of its chunk, counted once per chunk) over every shard."""
        out: dict[int, tuple[dict, dict]] = {}
        for shard in sorted(self.path.glob("rank-*.jsonl")):
            for line in self._read(lambda: artifacts.probe_shard(shard)):
                timing = {k: line[k] for k in ("wall_s", "forward_s", "forward_calls")}
                for j, (item, record) in enumerate(zip(line["items"], line["records"])):
                    out[item] = (record, timing if j == 0 else {})
        return out

    def append(self, rank: int, items: list[int], records: list[dict], timing: dict) -> None:
        shard = self.path / f"rank-{rank}.jsonl"
        _drop_torn_tail(shard)
        append_jsonl(shard, {"items": items, "records": records, **timing})
        if os.environ.get("ATTRACTOR_FSYNC_SHARDS"):       # for tests that kill mid-append
            with open(shard, "rb") as f:
                os.fsync(f.fileno())


def _drop_torn_tail(path: Path) -> None:
    """End a shard that a killed process left without a final newline: a last line cut short
    is dropped, a whole one (only its newline lost) kept. Only this rank's shard is ever
    appended to, so no one else is writing it."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:].decode("utf-8"))
        whole = True
    except (UnicodeDecodeError, json.JSONDecodeError):
        whole = False
    with open(path, "r+b") as f:
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(cut)


def _progress(name: str, total: int, done: int, world: World, enabled: bool) -> tqdm:
    where = f" (rank {world.rank} of {world.size})" if world.size > 1 else ""
    return tqdm(total=total, initial=done, desc=f"{name}{where}", unit="item",
                disable=not enabled or world.rank != 0, dynamic_ncols=True)


def _compute(probe, run, config, plan, items: list[int], size: list[int]) -> tuple:
    """(records, timing) of ``items``, in pieces of at most size[0] items; on running out of
    accelerator memory the pieces are halved (size[0] keeps the smaller size) and retried.
    Results do not change: every item has its own random streams."""
    records, timing = [], {"wall_s": 0.0, "forward_s": 0.0, "forward_calls": 0}
    lo = 0
    while lo < len(items):
        piece = items[lo:lo + size[0]]
        denoiser = common.TimedDenoiser(run.denoiser(), run.device)
        start = time.perf_counter()
        try:
            records += probe.compute(run, config, plan, piece, denoiser)
        except torch.cuda.OutOfMemoryError:     # torch.OutOfMemoryError from torch 2.5 on
            if size[0] == 1:
                raise UserError("the accelerator ran out of memory on a single item; use a "
                                "smaller model, --precision bf16 or another device") from None
            size[0] = max(1, size[0] // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        timing["wall_s"] += time.perf_counter() - start
        timing["forward_s"] += denoiser.seconds
        timing["forward_calls"] += denoiser.calls
        lo += len(piece)
    return records, timing


def _work(probe, run, config, plan, chunks: list[list[int]], store: Store | None,
          world: World, bar: tqdm) -> tuple[dict[int, tuple[dict, dict]], int]:
    """Compute this rank's chunks; each goes to the store whole as it finishes. Also returns
    the items per batch it ended with (smaller than the plan's after running out of memory)."""
    out: dict[int, tuple[dict, dict]] = {}
    size = [plan.chunk]
    for items in chunks:
        records, timing = _compute(probe, run, config, plan, items, size)
        if store is not None:
            store.append(world.rank, items, records, timing)
        out.update({i: (r, timing if j == 0 else {}) for j, (i, r) in
                    enumerate(zip(items, records))})
        bar.update(len(items) * world.size)
    return out, size[0]


def _pending(size: int, chunk: int, done: dict) -> list[list[int]]:
    """The plan's chunks (consecutive items, ``chunk`` per batch) not yet done. Chunks are
    fixed by the plan and stored whole, so every item is computed in the same batch whatever
    the number of processes or restarts: results are identical to the last bit."""
    chunks = [list(range(lo, min(lo + chunk, size))) for lo in range(0, size, chunk)]
    return [c for c in chunks if any(i not in done for i in c)]


def _timing(done: dict, finish_s: float, items: int) -> common.Timing:
    chunks = [t for _, t in done.values() if t]
    return common.Timing(wall_s=sum(t["wall_s"] for t in chunks) + finish_s,
                         forward_s=sum(t["forward_s"] for t in chunks),
                         forward_calls=sum(t["forward_calls"] for t in chunks), sequences=items)


def execute(name: str, probe, run, config, generator: torch.Generator, progress: bool = True,
            store: Store | None = None, world: World = World()) -> common.ProbeResult | None:
    """Run probe ``name``: plan, compute this rank's share of the items not yet done, and on
    rank 0 merge every item's record and finish (other ranks return None).

    Timing sums the chunks' wall and forward seconds over every rank and restart.
    """
    plan = probe.plan(run, config, generator)
    rng = common.numpy_generator(generator)                 # the same on every rank
    size = len(plan.keys)
    if store is not None:
        store.open(fingerprint(name, config, plan.keys, run), world)
    done = store.done() if store is not None else {}
    world.barrier()                     # every rank has read the same shards before any writes
    pending = _pending(size, plan.chunk, done)
    bar = _progress(name, size, size - sum(map(len, pending)), world, progress)
    mine, chunk = _work(probe, run, config, plan, pending[world.rank::world.size], store,
                        world, bar)
    done.update(mine)
    bar.close()
    world.barrier()
    if world.rank != 0:
        return None
    if store is not None:
        done = store.done()
    missing = [i for i in range(size) if i not in done]
    if missing:
        raise UserError(f"probe {name}: {len(missing)} of {size} items have no result in "
                        f"{store.path if store else 'memory'}; run the probe again")
    start = time.perf_counter()
    result = probe.finish(run, config, plan, [done[i][0] for i in range(size)], rng,
                          lambda: _timing(done, time.perf_counter() - start, size))
    result.notes["batch"] = {"planned": plan.chunk, "used": chunk,
                             "processes": world.size}    # used < planned: memory ran out
    return result
