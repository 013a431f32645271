"""Probes as independent work items: keyed streams make every item's result independent of the
batch it runs in, so probes can be sharded over processes and resumed (attractor.probes.items).
"""

import dataclasses
import json
import math

import pytest
import torch
from _planted import planted_run, random_sequences

from attractor import artifacts, streams
from attractor.config import from_dict
from attractor.model.configs import get_model_config
from attractor.probes import items
from attractor.probes.registry import PROBES, run_probe
from attractor.train.objectives import build_model

K, L = 24, 12


# ----------------------------------------------------------------------------- the streams

def test_a_rows_stream_does_not_depend_on_the_other_rows_or_the_draw_sizes():
    keys = [streams.item_key(0, i) for i in range(5)]
    together = streams.RowStreams(keys)
    draws = [together.uniform(n) for n in (3, streams.BLOCK - 1, 7, 2 * streams.BLOCK)]
    alone = streams.RowStreams(keys[2:3])
    for n, d in zip((3, streams.BLOCK - 1, 7, 2 * streams.BLOCK), draws):
        torch.testing.assert_close(alone.uniform(n)[0], d[2], rtol=0, atol=0)
    assert not torch.equal(draws[0][0], draws[0][1])          # rows differ


def test_keys_mix_every_part_and_digests_see_every_token():
    assert len({streams.item_key(s, i, j) for s in range(3) for i in range(3)
                for j in range(3)}) == 27
    a = torch.tensor([5, 6, 7])
    assert streams.digest(a) == streams.digest(a.clone())
    assert streams.digest(a) != streams.digest(torch.tensor([5, 6, 8]))
    assert all(0 <= streams.item_key(2**70, -1) < 2**63 for _ in range(3))


def test_keyed_integers_are_uniform_over_their_range():
    rows = streams.RowStreams([streams.item_key(9, i) for i in range(50)])
    x = streams.integers(rows, 3, 8, (50, 2000), "cpu")
    assert int(x.min()) == 3 and int(x.max()) == 7
    counts = torch.bincount(x.flatten() - 3, minlength=5).double()
    expected = x.numel() / 5
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 18.5, chi2                                  # 4 dof, p = 0.001


def test_keyed_children_are_the_rows_repeated():
    rows = streams.RowStreams([1, 2])
    kids = streams.repeat(rows, 3)
    assert len(kids) == 6 and kids.keys[3:6] == [streams.item_key(2, j) for j in range(3)]
    g = torch.Generator()
    assert streams.repeat(g, 3) is g


# ----------------------------------------------------------------------------- the probes

def _run(tmp_path, family: str):
    """A random-weight nano model of ``family`` over 16 training and 16 held-out sequences."""
    seqs = random_sequences(32, L, K, seed=1).clamp_min(4)      # no special ids
    torch.manual_seed(0)
    model = build_model(get_model_config("nano"), family, K).eval()
    run = planted_run(tmp_path / family, seqs, 16, model, K)
    if family != "masked":
        return dataclasses.replace(run, family=family)
    return dataclasses.replace(run, family=family, mask_id=K, vocab_size=K + 1)  # ids and mask


SMALL = {
    "recovery_deterministic": {"fractions": (0.2, 0.4), "reverse_steps": 4, "num_sequences": 6,
                               "examples": 1},
    "recovery_stochastic": {"times": (0.2, 0.5), "reverse_steps": 4, "num_sequences": 6},
    "entropy": {"num_sequences": 6, "nelbo_samples": 3, "entropy_times": (1e-5, 0.3)},
    "generate": {"num_samples": 5, "reverse_steps": 4, "num_reference": 4},
}


def _config(name: str, max_batch: int):
    return from_dict(PROBES[name].config, {**SMALL[name], "common": {"bootstrap": 20,
                                                                      "max_batch": max_batch}})


def _same(a, b) -> bool:
    """Equal as written to JSON (NaN, for a sequence the corruption left unchanged, is null)."""
    def text(v):
        return json.dumps(v, sort_keys=True).replace("NaN", "null")
    return text(a) == text(b)


def _close(a, b) -> bool:
    """Equal, but for floats within 1e-6 relative: batches of other sizes may round the float32
    forward pass differently in its last bits (tokens, counts and categories must be equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) or (a != a and b != b)
    return a == b


def _result(name, run, max_batch, seed=0, **kw):
    return run_probe(name, run, _config(name, max_batch), torch.Generator().manual_seed(seed),
                     progress=False, **kw)


@pytest.mark.parametrize("family", ["uniform", "masked", "ar"])
@pytest.mark.parametrize("name", list(PROBES))
def test_every_items_result_is_the_same_in_any_batch(tmp_path, family, name):
    """Other batch sizes, other chunks: the same items (processes and restarts keep the plan's
    chunks and so agree to the last bit: test_probe_distributed.py)."""
    run = _run(tmp_path, family)
    whole, pieces = _result(name, run, 256), _result(name, run, 3)
    assert _close(whole.rows, pieces.rows)
    assert _close(whole.summary, pieces.summary)
    assert _close(whole.histograms, pieces.histograms)
    assert _close(whole.examples, pieces.examples)
    other = _result(name, run, 256, seed=1)
    assert not _same(other.rows, whole.rows)                 # the seed matters


def test_the_same_sequence_gets_the_same_noise_from_any_file(tmp_path):
    """Keys come from the tokens, not the pool ids: the same sequences in another order and
    another pool give the same row for each sequence."""
    run = _run(tmp_path, "uniform")
    order = torch.cat([torch.arange(15, -1, -1), torch.arange(16, 32)])
    shuffled = dataclasses.replace(run, dataset=dataclasses.replace(
        run.dataset, sequences=run.dataset.sequences[order]))
    config = from_dict(PROBES["recovery_stochastic"].config,
                       {**SMALL["recovery_stochastic"], "num_sequences": 16})
    a = run_probe("recovery_stochastic", run, config, torch.Generator().manual_seed(0), False)
    b = run_probe("recovery_stochastic", shuffled, config, torch.Generator().manual_seed(0),
                  False)
    by_tokens = {}
    for r in a.rows:
        by_tokens[(r["split"], tuple(run.dataset.sequences[r["id"]].tolist()), r["t"])] = r
    for r in b.rows:
        twin = by_tokens[(r["split"], tuple(shuffled.dataset.sequences[r["id"]].tolist()),
                          r["t"])]
        assert _close({k: v for k, v in r.items() if k != "id"},
                      {k: v for k, v in twin.items() if k != "id"})


def test_a_store_resumes_from_the_items_it_holds(tmp_path):
    run = _run(tmp_path, "uniform")
    name = "recovery_stochastic"
    reference = _result(name, run, 4)
    store = items.Store(run.directory, name)
    _result(name, run, 4, store=store)
    shard = store.path / "rank-0.jsonl"
    lines = shard.read_bytes().split(b"\n")
    assert len(lines) > 3
    # as if killed: keep two chunks, the third torn in the middle of its line
    shard.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:25])
    calls = []
    probe = PROBES[name]
    counting = dataclasses.replace(probe, compute=lambda *a: calls.append(a[3]) or
                                   probe.compute(*a))
    resumed = items.execute(name, counting, run, _config(name, 4),
                            torch.Generator().manual_seed(0), False, store)
    done_before = sum(len(json.loads(line)["items"]) for line in lines[:2])
    assert sum(len(c) for c in calls) == len(reference.rows) - done_before
    assert _same(resumed.rows, reference.rows) and _same(resumed.summary, reference.summary)


def test_a_store_refuses_work_of_other_settings(tmp_path):
    from attractor.errors import UserError

    run = _run(tmp_path, "uniform")
    store = items.Store(run.directory, "entropy")
    _result("entropy", run, 256, store=store)
    with pytest.raises(UserError, match="other settings"):
        _result("entropy", run, 256, seed=5, store=store)
    fresh = _result("entropy", run, 256, seed=5,
                    store=items.Store(run.directory, "entropy", replace=True))
    assert _same(fresh.rows, _result("entropy", run, 256, seed=5).rows)


def test_running_out_of_memory_halves_the_batch_and_changes_nothing(tmp_path):
    run = _run(tmp_path, "uniform")
    name = "recovery_deterministic"
    reference = _result(name, run, 256)
    probe = PROBES[name]

    def small_memory(run, config, plan, chosen, denoiser):
        if len(chosen) > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return probe.compute(run, config, plan, chosen, denoiser)

    result = items.execute(name, dataclasses.replace(probe, compute=small_memory), run,
                           _config(name, 256), torch.Generator().manual_seed(0), False)
    assert _close(result.rows, reference.rows) and _close(result.summary, reference.summary)
    assert result.notes["batch"] == {"planned": 256, "used": 4, "processes": 1}   # 256 / 2**6


def test_keys_that_agree_in_their_low_32_bits_get_different_streams():
    """Every bit of a key seeds its stream (torch's CPU generator keeps only 32)."""
    a, b = streams.RowStreams([5]), streams.RowStreams([5 + 2**40])
    assert not torch.equal(a.uniform(8), b.uniform(8))
    assert streams.item_key(7) != streams.item_key(7, 0)


def _one_shard(tmp_path, name, chunk, run=None):
    """A probe of a uniform run computed into its store; the path of its one shard."""
    run = run or _run(tmp_path, "uniform")
    store = items.Store(run.directory, name)
    _result(name, run, chunk, store=store)
    return store.path / "rank-0.jsonl"


def test_a_whole_last_line_that_lost_its_newline_is_kept(tmp_path):
    shard = _one_shard(tmp_path, "entropy", 256)
    shard.write_bytes(shard.read_bytes().rstrip(b"\n"))          # one whole chunk, no newline
    items._drop_torn_tail(shard)
    assert shard.read_bytes().endswith(b"}\n") and len(artifacts.probe_shard(shard)) == 1


def test_damaged_shards_are_one_line_and_overwrite_discards_them(tmp_path):
    from attractor.errors import UserError

    run, name = _run(tmp_path, "uniform"), "recovery_stochastic"
    shard = _one_shard(tmp_path, name, 4, run)
    lines = shard.read_bytes().split(b"\n")
    shard.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    with pytest.raises(UserError, match="pass --overwrite to discard"):
        _result(name, run, 4, store=items.Store(run.directory, name))
    fresh = _result(name, run, 4, store=items.Store(run.directory, name, replace=True))
    assert _same(fresh.rows, _result(name, run, 4).rows)
