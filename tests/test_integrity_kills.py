"""Kills at any point of train, sweep and probe, then continued: the uninterrupted results.

A command runs in a subprocess that kills itself (SIGKILL) just before or just after its k-th
rename (the commit point of every file, of each checkpoint and of each cache entry), half-way
through its k-th metrics line, or is killed by the test after a random time. It is then
continued as a user would (``train --resume``, the same sweep, the same probe and ``attractor
report``) and must end with the results of an uninterrupted run, no temporary file left. The
kill points are drawn with a fixed seed; 20 kills in all (a slow test).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from test_integrity import leftovers, tiny_run
from test_integrity_faults import ENV, JOBS, REPO, _compare, _continue
from test_integrity_files import SWEEP_TOML

KILLER = """
import os, signal, sys
import attractor.io as aio
from attractor.cli import main

mode, k = os.environ["KILL_MODE"], int(os.environ["KILL_AT"])
count = {"replace": 0, "append": 0}
real_replace, real_append = os.replace, aio.append_jsonl

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def replace(a, b, **kw):
    count["replace"] += 1
    if mode == "before" and count["replace"] == k:
        die()
    real_replace(a, b, **kw)
    if mode == "after" and count["replace"] == k:
        die()

def append(path, row):
    count["append"] += 1
    if mode == "torn" and count["append"] == k:
        with open(path, "a", encoding="utf-8") as f:
            f.write('{"step": 1, "lo')
            f.flush()
        die()
    real_append(path, row)

os.replace, aio.append_jsonl = replace, append
code = main(sys.argv[1:])
if mode == "count":
    print(count["replace"], count["append"])
sys.exit(code)
"""


def _run_killer(argv: list[str], mode: str, k: int = 0, delay: float | None = None
                ) -> subprocess.CompletedProcess | None:
    env = dict(ENV, KILL_MODE=mode, KILL_AT=str(k))
    proc = subprocess.Popen([sys.executable, "-c", KILLER, *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _references(tmp_path):
    """Each job run uninterrupted: its directory, its (renames, metrics lines), its seconds."""
    (tmp_path / "tiny.toml").write_text(SWEEP_TOML)
    base_run = tiny_run(tmp_path / "base_run")
    refs = {}
    for job in JOBS:
        ref = tmp_path / f"ref_{job}"
        if job == "probe":
            shutil.copytree(base_run, ref)
        start = time.perf_counter()
        done = _run_killer(JOBS[job](ref), "count")
        assert done.returncode == 0, done.stderr
        renames, appends = (int(x) for x in done.stdout.split()[-2:])
        refs[job] = (ref, renames, appends, time.perf_counter() - start)
    return base_run, refs


@pytest.mark.slow
def test_random_kills_resume_to_the_uninterrupted_results(tmp_path, capsys):
    base_run, refs = _references(tmp_path)
    rng = random.Random(2024)
    trials = []
    for trial in range(20):
        job = ("train", "sweep", "probe")[trial % 3]
        ref, renames, appends, seconds = refs[job]
        mode = rng.choice(("before", "after", "torn", "timer"))
        if mode == "torn" and appends == 0:         # a probe appends no metrics line
            mode = "before"
        k = rng.randint(1, appends if mode == "torn" else renames)
        delay = rng.uniform(0.3, 0.95) * seconds if mode == "timer" else None
        d = tmp_path / f"k{trial}_{job}"
        if job == "probe":
            shutil.copytree(base_run, d)
        killed = _run_killer(JOBS[job](d), "none" if mode == "timer" else mode, k, delay)
        what = f"trial {trial}: {job} killed {mode} at {round(delay, 1) if delay else k}"
        assert "Traceback" not in killed.stderr, (what, killed.stderr)
        try:
            _continue(job, d, capsys)
            _compare(job, d, ref)
        except AssertionError as err:
            raise AssertionError(f"{what}: {err}") from err
        assert leftovers(d) == [], (what, leftovers(d))
        trials.append([job, mode, round(delay, 1) if delay else k, killed.returncode])
    print(json.dumps(trials))
    assert sum(code == -signal.SIGKILL for *_, code in trials) >= 15, trials
