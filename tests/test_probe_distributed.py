"""Distributed, resumable probing: ``attractor probe`` under torchrun (two CPU processes, gloo)
gives the same per-item results as one process, and a probe killed mid-way and restarted with
another number of processes finishes with the results of an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", ATTRACTOR_FSYNC_SHARDS="1")
COMMANDS = {
    "recovery": ["--times", "0.2,0.4", "--fractions", "0.2,0.4", "--reverse-steps", "6",
                 "--num-sequences", "10"],
    "entropy": ["--nelbo-samples", "3", "--entropy-times", "1e-5,0.3", "--num-sequences", "10"],
    "generate": ["--num-samples", "6", "--reverse-steps", "6", "--num-reference", "6"],
}
COMMON = ["--bootstrap", "20", "--max-batch", "4", "--no-progress",
          "--device", "cpu"]
pytestmark = pytest.mark.slow


def _attractor(argv, processes: int = 1, wait: bool = True):
    launch = [sys.executable, "-m", "attractor"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(processes), "-m", "attractor"]
    if not wait:
        return subprocess.Popen([*launch, *argv], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    done = subprocess.run([*launch, *argv], env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _results(run_dir: Path, name: str) -> tuple[list, object]:
    rows = [json.loads(line) for line in (run_dir / "probes" / f"{name}.jsonl").read_text()
            .splitlines()]
    return rows, json.loads((run_dir / "probes" / f"{name}.json").read_text())["summary"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from _runs import train_small

    run_dir = tmp_path_factory.mktemp("distributed") / "run"
    train_small(run_dir, num_train=16, steps=40, corpus=400, test_size=16,
                data={"block_length": 10}, eval_sequences=16)
    return run_dir


def _copy(run_dir: Path, name: str) -> Path:
    return Path(shutil.copytree(run_dir, run_dir.parent / name))


@pytest.mark.parametrize("command", list(COMMANDS))
def test_two_processes_give_the_items_of_one(trained, command):
    one, two = _copy(trained, f"one-{command}"), _copy(trained, f"two-{command}")
    _attractor(["probe", command, str(one), *COMMANDS[command], *COMMON])
    _attractor(["probe", command, str(two), *COMMANDS[command], *COMMON], processes=2)
    names = [p.stem for p in (one / "probes").glob("*.jsonl")]
    assert names
    for name in names:
        assert _results(one, name) == _results(two, name), name
    assert not (two / "probes" / "partial").exists()         # merged shards are removed


def test_a_killed_probe_restarted_with_two_processes_finishes_as_one_run(trained):
    argv = ["--experiment", "stochastic", "--times", "0.2,0.4", "--reverse-steps", "100",
            "--num-sequences", "16", "--bootstrap", "20", "--max-batch", "4", "--no-progress",
            "--device", "cpu"]
    whole, killed = _copy(trained, "whole"), _copy(trained, "killed")
    _attractor(["probe", "recovery", str(whole), *argv])
    shard = killed / "probes" / "partial" / "recovery_stochastic" / "rank-0.jsonl"
    proc = _attractor(["probe", "recovery", str(killed), *argv], wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if shard.is_file() and shard.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(shard.read_bytes().splitlines())
    total = 2 * 16 * 2 // 4                                    # rows / max_batch chunks
    assert 2 <= finished < total, finished                     # killed mid-way
    assert not (killed / "probes" / "recovery_stochastic.json").exists()
    _attractor(["probe", "recovery", str(killed), *argv], processes=2)
    assert _results(whole, "recovery_stochastic") == _results(killed, "recovery_stochastic")
