"""Fault injection: concurrent writers, kills at any write, and a full disk at every write site.

* Concurrent writers: a second train, resume, sweep, probe or report on a directory another
  process is writing is refused at once (timed in-process), naming the holder, and changes
  nothing; two trainings started together into one directory never leave a mixed run.
* Kills: a command killed just before or just after any of its renames (the commit point of
  every file and of each checkpoint), half-way through a metrics line, or at a random time, then
  continued (``train --resume``, the same sweep or probe command), ends with the results of an
  uninterrupted run.
* A full disk (ENOSPC) at each write site: one line, no temporary file left, and the same
  command or ``--resume`` then finishes with the results of an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_integrity import (
    PROBE_ARGS,
    REPO,
    TINY_ARGS,
    files,
    leftovers,
    one_line_error,
    same_checkpoint,
)
from test_integrity_files import SWEEP_TOML

from attractor.cli import main
from attractor.lock import LOCK_NAME, read_holder

ENV = dict(os.environ, OMP_NUM_THREADS="1")
TRAIN = [*TINY_ARGS, "--num-train", "16"]


def _spawn(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "attractor", *argv], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for_lock(directory: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until ``proc`` holds the lock of ``directory``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        holder = read_holder(directory / LOCK_NAME)
        if holder and holder["pid"] == proc.pid:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    raise AssertionError(f"{proc.args} never took the lock of {directory}")


def _refused(argv: list[str], holder: subprocess.Popen, capsys) -> float:
    """Run ``argv`` in-process while ``holder`` writes: refused, naming it; seconds taken."""
    start = time.perf_counter()
    err = one_line_error(argv, capsys)
    took = time.perf_counter() - start
    assert f"process {holder.pid}" in err and "in use by" in err, err
    return took


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


# --------------------------------------------------------------------------- concurrent writers

@pytest.mark.slow
def test_every_pairing_of_writers_refuses_the_second_within_a_second(tmp_path, capsys):
    run, sweep, config = tmp_path / "run", tmp_path / "sweep", tmp_path / "tiny.toml"
    config.write_text(SWEEP_TOML.replace("steps = 4", "steps = 100000"))
    long_train = ["train", "--out", str(run), *TRAIN, "--steps", "100000"]
    timings = {}
    a = _spawn(long_train + ["--seed", "0"])
    _wait_for_lock(run, a)
    before = {k: v for k, v in files(run).items() if k != LOCK_NAME}
    timings["train/train"] = _refused(["train", "--out", str(run), *TRAIN, "--steps", "60",
                                       "--seed", "1"], a, capsys)
    timings["train/probe"] = _refused(["probe", "entropy", str(run), *PROBE_ARGS], a, capsys)
    timings["train/report"] = _refused(["report", str(run)], a, capsys)
    while not (run / "checkpoint" / "meta.json").is_file():
        time.sleep(0.05)
    _stop(a)                                    # a stale lock and a run to resume
    a = _spawn(["train", "--out", str(run), "--resume", "--no-progress"])
    _wait_for_lock(run, a)
    timings["resume/resume"] = _refused(["train", "--out", str(run), "--resume"], a, capsys)
    _stop(a)
    s = _spawn(["sweep", "--out", str(sweep), "--config", str(config), "--no-progress"])
    _wait_for_lock(sweep, s)
    timings["sweep/sweep"] = _refused(["sweep", "--out", str(sweep), "--config", str(config)],
                                      s, capsys)
    timings["sweep/sweep --only"] = _refused(["sweep", "--out", str(sweep), "--resume-config",
                                              "--only", "nano-n16-s0"], s, capsys)
    timings["sweep/report"] = _refused(["report", str(sweep)], s, capsys)
    _stop(s)
    assert all(t < 1.0 for t in timings.values()), timings
    assert set(before) <= set(files(run))
    print(json.dumps({k: round(v, 3) for k, v in timings.items()}))


def test_a_probe_and_a_report_exclude_each_other(tmp_path, capsys):
    from test_integrity import Holder, tiny_run

    run = tiny_run(tmp_path / "run")
    holder = Holder(run)                    # stands for a probe writing into RUN/probes
    try:
        took = _refused(["report", str(run)], holder.proc, capsys)
        took += _refused(["probe", "entropy", str(run), *PROBE_ARGS], holder.proc, capsys)
    finally:
        holder.stop()
    assert took < 2.0 and not (run / "probes").exists()


@pytest.mark.slow
def test_two_trainings_into_one_directory_never_mix(tmp_path):
    """The issue's reproduction, 10 times with random start offsets:
    one of the two runs is refused, and the directory holds exactly the other's run."""
    argv = ["train", *TRAIN, "--steps", "60", "--checkpoint-every", "5"]
    refs = {}
    for seed in (0, 1):
        refs[seed] = tmp_path / f"ref{seed}"
        assert subprocess.run([sys.executable, "-m", "attractor", *argv, "--out",
                               str(refs[seed]), "--seed", str(seed)], cwd=REPO, env=ENV,
                              capture_output=True).returncode == 0
    rng = random.Random(0)
    outcomes = []
    for rep in range(10):
        out = tmp_path / f"conc{rep}"
        first = _spawn([*argv, "--out", str(out), "--seed", "0"])
        time.sleep(rng.uniform(0.0, 2.5))
        second = _spawn([*argv, "--out", str(out), "--seed", "1"])
        codes = [first.wait(), second.wait()]
        errors = [first.stderr.read(), second.stderr.read()]
        assert sorted(codes) == [0, 2], (codes, errors)
        winner = codes.index(0)
        loser_error = errors[1 - winner]
        assert loser_error.count("\n") == 1 and "Traceback" not in loser_error, loser_error
        assert json.loads((out / "config.json").read_text())["train"]["seed"] == winner
        assert same_checkpoint(out / "checkpoint", refs[winner] / "checkpoint")
        assert leftovers(out) == [] and not (out / LOCK_NAME).exists()
        outcomes.append("in use" if "in use" in loser_error else "exists")
    print(json.dumps({"refused while running": outcomes.count("in use"),
                      "refused as finished": outcomes.count("exists")}))


# --------------------------------------------------------------------------- what a run ends with

def _probe_outputs(probes: Path) -> dict:
    """A probe directory's results without their timings (which differ between runs)."""
    out = {}
    for p in sorted(probes.glob("*.json*")):
        if p.name.endswith(".json") and p.name != "results.json":
            data = json.loads(p.read_text())
            if isinstance(data, dict):              # timings and the directory differ
                data.pop("timing", None)
                data.pop("run", None)
            out[p.name] = data
        elif p.suffix == ".jsonl":
            out[p.name] = p.read_bytes()
    return out


def _metrics(run: Path) -> list:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]


def _same_run(a: Path, b: Path) -> None:
    assert same_checkpoint(a / "checkpoint", b / "checkpoint")
    assert _metrics(a) == _metrics(b)
    for name in ("config.json", "membership.json", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


JOBS = {
    "train": lambda d: ["train", "--out", str(d), *TRAIN, "--steps", "6"],
    "sweep": lambda d: ["sweep", "--out", str(d), "--config", str(d.parent / "tiny.toml"),
                        "--no-progress"],
    "probe": lambda d: ["probe", "recovery", str(d), "--experiment", "stochastic", "--times",
                        "0.25", "--num-sequences", "2", "--reverse-steps", "2",
                        "--examples", "1", "--bootstrap", "10", "--device", "cpu",
                        "--no-progress"],
}


def _continue(job: str, d: Path, capsys) -> None:
    """What a user does after the kill: --resume, the same sweep, or the same probe."""
    if job == "train":
        again = ["train", "--out", str(d), "--resume", "--no-progress"] \
            if (d / "config.json").exists() else JOBS["train"](d)
        assert main(again) == 0
    elif job == "sweep":
        assert main(JOBS["sweep"](d)) == 0
    else:
        capsys.readouterr()
        code = main(JOBS["probe"](d))
        # a probe killed after its JSON (its last file) is complete: it is not redone
        assert code == 0 or code == 2 and "already exists" in capsys.readouterr().err
        assert main(["report", str(d)]) == 0


def _compare(job: str, d: Path, ref: Path) -> None:
    if job == "train":
        _same_run(d, ref)
    elif job == "sweep":
        for run in sorted((ref / "runs").iterdir()):
            _same_run(d / "runs" / run.name, run)
            assert _probe_outputs(d / "runs" / run.name / "probes") == \
                _probe_outputs(run / "probes")
        a, b = (json.loads((x / "analysis" / "analysis.json").read_text()) for x in (d, ref))
        assert a == b
    else:
        assert _probe_outputs(d / "probes") == _probe_outputs(ref / "probes")


# --------------------------------------------------------------------------- full disks

class FullDisk:
    """Counts the writes of a command and fails the ``at``-th with ENOSPC, after writing half
    of it: every text file (attractor.io), checkpoint tensors and state, and cache entries."""

    def __init__(self, monkeypatch, at: int):
        import builtins

        from attractor import io
        from attractor.data import cache
        from attractor.train import checkpoint

        self.at, self.count, self.sites, self.current = at, 0, [], "?"
        real_open, real_atomic = builtins.open, io.atomic_write

        def fake_open(file, mode="r", *a, **kw):
            f = real_open(file, mode, *a, **kw)
            where = file if isinstance(file, (str, Path)) else self.current
            return self._wrap(f, where) if "w" in mode or "a" in mode else f

        def atomic(path, *a, **kw):             # names the file an anonymous temporary becomes
            self.current = path
            return real_atomic(path, *a, **kw)

        monkeypatch.setattr(io, "open", fake_open, raising=False)
        monkeypatch.setattr(io, "atomic_write", atomic)
        for module, name in ((checkpoint, "save_file"), (cache, "save_file")):
            monkeypatch.setattr(module, name, self._binary(getattr(module, name), name))
        monkeypatch.setattr(checkpoint.torch, "save", self._binary(torch.save, "torch.save"))

    def _hit(self, where) -> bool:
        self.count += 1
        self.sites.append(str(where))
        return self.count == self.at

    def _wrap(self, f, where):
        disk, write = self, f.write

        def failing(text):
            if disk._hit(where):
                write(text[: len(text) // 2])
                f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write(text)

        f.write = failing
        return f

    def _binary(self, real, name):
        def save(obj, path, *a, **kw):
            if self._hit(path):
                Path(path).write_bytes(b"\0" * 10)
                if name == "torch.save":
                    raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected "
                                       "pos 128 vs 0\nPytorchStreamWriter failed writing file "
                                       "data/0: file write failed")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(obj, path, *a, **kw)
        return save


# Sites a sweep shares with a training or a probe (tested there), left out of the sweep's loop.
SHARED_SITES = {"tokenizer.json", "membership.json", "config.json", "metrics.jsonl",
                "model.safetensors", "ema.safetensors", "state.pt", "meta.json", "summary.json"}


def _site(where) -> str:
    path = Path(str(where))
    return f"cache/{path.name}" if "cache" in path.parts else path.name


def _sweep_sites(sites: list[str]) -> list[int]:
    """1-based indices of the first write of each site of its own that a sweep has."""
    keep, seen = [], set()
    for i, where in enumerate(sites, 1):
        name = _site(where)
        shared = name in SHARED_SITES or name.endswith((".jsonl", "_examples.json")) \
            or name.startswith(("recovery_", "generate"))
        if name not in seen and not shared:
            seen.add(name)
            keep.append(i)
    return keep


def _full_disk_cases(job: str, tmp_path: Path, monkeypatch, capsys, ats=None) -> list:
    from test_integrity import tiny_run

    base = tiny_run(tmp_path / "base") if job == "probe" else None
    ref = tmp_path / "ref"
    if base is not None:
        shutil.copytree(base, ref)
    with monkeypatch.context() as m:
        counter = FullDisk(m, at=0)
        assert main(JOBS[job](ref)) == 0
    if ats is None:
        ats = _sweep_sites(counter.sites) if job == "sweep" else range(1, counter.count + 1)
    seen = []
    for at in ats:
        d = tmp_path / f"at{at}"
        if base is not None:
            shutil.copytree(base, d)
        with monkeypatch.context() as m:
            disk = FullDisk(m, at=at)
            capsys.readouterr()
            code = main(JOBS[job](d))
            err = capsys.readouterr().err
        site = disk.sites[at - 1] if at <= len(disk.sites) else "?"
        assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), err
        assert code in (0, 2), (site, err)
        assert code == 0 or "No space left" in err or "file write failed" in err, (site, err)
        assert leftovers(d) == [], (site, leftovers(d))
        _continue(job, d, capsys)
        _compare(job, d, ref)
        seen.append((_site(site), code))
    return seen


def test_a_full_disk_in_training_is_one_line_and_resumable(tmp_path, monkeypatch, capsys):
    """A sample of the sites: config.json, then a checkpoint's tensors (see the slow loop)."""
    seen = _full_disk_cases("train", tmp_path, monkeypatch, capsys, ats=[3, 6])
    assert seen == [("config.json", 2), ("model.safetensors", 2)], seen


@pytest.mark.slow
@pytest.mark.parametrize("job", ["train", "probe", "sweep"])
def test_a_full_disk_at_every_write_site(job, tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.toml").write_text(SWEEP_TOML)
    seen = _full_disk_cases(job, tmp_path, monkeypatch, capsys)
    print(json.dumps(seen))
    assert len(seen) >= 5
