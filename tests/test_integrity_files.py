"""Every file attractor reads, damaged six ways, read by the command that reads it.

Each case: one artifact x {missing, empty, wrong type, wrong shape, truncated, non-UTF-8}. The
command ends in a one-line error or in correct success (the artifacts that are rebuilt or
regenerated: a data-cache entry, summary.json, a probe's rows in a sweep, a stale lock), never
in a traceback, and leaves every other file of the directory unchanged. The "wrong type" column
runs by default; the rest of the table is marked slow.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from test_integrity import PROBE_ARGS, files, leftovers, tiny_run

from attractor.cli import main

KINDS = ("missing", "empty", "wrong_type", "wrong_shape", "truncated", "non_utf8")
PROBES = [  # (command, options): tiny settings, one probe config per call
    ["recovery", "--experiment", "deterministic", "--fractions", "0.5", "--num-sequences", "2",
     "--reverse-steps", "2", "--examples", "1"],
    ["recovery", "--experiment", "stochastic", "--times", "0.25", "--num-sequences", "2",
     "--reverse-steps", "2", "--examples", "1"],
    ["entropy", "--num-sequences", "2", "--nelbo-samples", "1"],
    ["generate", "--num-samples", "2", "--reverse-steps", "2", "--num-reference", "4"],
]
COMMON = ["--bootstrap", "10", "--device", "cpu", "--no-progress"]
SWEEP_TOML = """
sizes = [16]
seeds = [0]
[train]
steps = 4
batch_size = 8
eval_sequences = 8
checkpoint_every = 2
log_every = 1
precision = "fp32"
device = "cpu"
[train.data]
corpus_size = 300
test_size = 16
[probes.recovery_deterministic]
fractions = [0.5]
num_sequences = 2
reverse_steps = 2
examples = 1
common = {bootstrap = 10}
[probes.recovery_stochastic]
times = [0.25]
num_sequences = 2
reverse_steps = 2
examples = 1
common = {bootstrap = 10}
[probes.entropy]
num_sequences = 2
nelbo_samples = 1
common = {bootstrap = 10}
[probes.generate]
num_samples = 2
reverse_steps = 2
num_reference = 4
common = {bootstrap = 10}
[analysis]
bootstrap = 10
"""
RUN_NAME = "nano-n16-s0"


@pytest.fixture(scope="module")
def probed(tmp_path_factory) -> Path:
    """A tiny run with every probe's files and a report."""
    run = tiny_run(tmp_path_factory.mktemp("files") / "run")
    for command in PROBES:
        assert main(["probe", command[0], str(run), *command[1:], *COMMON]) == 0
    return run


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A tiny sweep of one run, probed and analysed, with its report."""
    root = tmp_path_factory.mktemp("files_sweep")
    (root / "tiny.toml").write_text(SWEEP_TOML)
    out = root / "sweep"
    assert main(["sweep", "--out", str(out), "--config", str(root / "tiny.toml"),
                 "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> Path:
    """A data cache holding the entry of the tiny runs' data."""
    from attractor.data import DataConfig, build_dataset

    cache = tmp_path_factory.mktemp("files_cache") / "cache"
    build_dataset(DataConfig(corpus_size=300, test_size=16), cache_dir=cache)
    return cache


# --------------------------------------------------------------------------- damage

def _json_edit(change: Callable[[object], object]) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        return json.dumps(change(json.loads(data))).encode()
    return edit


def _set(**fields):
    return _json_edit(lambda d: {**d, **fields})


def _state_edit(data_path: Path) -> bytes:
    state = torch.load(data_path, weights_only=True)
    state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(2, 2)
    torch.save(state, data_path)
    return data_path.read_bytes()


def _tensor_edit(path: Path) -> bytes:
    from safetensors.torch import load_file, save_file

    weights = load_file(str(path))
    name = next(iter(weights))
    weights[name] = weights[name].flatten()[:3].clone()
    save_file(weights, str(path))
    return path.read_bytes()


def _other_tokenizer(path: Path) -> bytes:
    from attractor.data.tokenizer import word_tokenizer

    word_tokenizer(["only", "three", "words"]).save(str(path))
    return path.read_bytes()


def _examples_edit(data: bytes) -> bytes:
    records = json.loads(data)
    records[0]["n_real"] += 1
    return json.dumps(records).encode()


def _metrics_line(line: bytes) -> Callable[[bytes], bytes]:
    return lambda data: line + b"\n" + data.split(b"\n", 1)[1]


def damage(path: Path, kind: str, wrong_type: bytes, wrong_shape) -> None:
    """Damage ``path`` one way; ``wrong_shape`` maps the bytes (or, for binary files, the path)
    to content of the right type and the wrong shape."""
    data = path.read_bytes() if path.exists() else b""
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "wrong_type":
        path.write_bytes(wrong_type)
    elif kind == "wrong_shape":
        path.write_bytes(wrong_shape(path) if getattr(wrong_shape, "binary", False)
                         else wrong_shape(data))
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "non_utf8":
        path.write_bytes(b"\xff\xfe" + data[2:])


def binary(fn):
    fn.binary = True
    return fn


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Artifact:
    name: str
    base: str                       # fixture: probed | swept | cached
    path: str                       # relative to the base directory
    argv: list[str]                 # {dir} is the copied base directory, {tmp} the test's
    wrong_type: bytes
    wrong_shape: Callable
    succeeds: tuple[str, ...] = ()  # kinds that end in success
    may_change: tuple[str, ...] = ()    # on success, the other files it may (re)write
    prepare: Callable | None = None     # on the copy, before the damage
    check: Callable | None = None       # on success: what correct means
    words: tuple[str, ...] = field(default_factory=tuple)   # in every error


def _no_summary(d: Path) -> None:
    (d / "summary.json").unlink()


def _stale_lock(d: Path) -> None:
    from attractor.lock import HOST, LOCK_NAME

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (d / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": HOST, "command": "x",
                                           "mode": "exclusive", "since": "then"}))


def _summary_regenerated(d: Path, original: Path) -> None:
    new, old = (json.loads((x / "summary.json").read_text()) for x in (d, original))
    for key in ("steps", "train_nelbo", "test_nelbo", "test_ppl_bound"):
        assert new[key] == old[key], key


def _rows_redone(d: Path, original: Path) -> None:
    name = f"runs/{RUN_NAME}/probes/generate.jsonl"
    assert (d / name).read_bytes() == (original / name).read_bytes()


def _entry_rebuilt(d: Path, original: Path) -> None:
    assert files(d) == files(original)


RESUME = ["train", "--out", "{dir}", "--resume", "--no-progress"]
PROBE = ["probe", "entropy", "{dir}", *PROBE_ARGS, "--overwrite"]
REPORT = ["report", "{dir}"]
RESUME_SWEEP = ["sweep", "--out", "{dir}", "--resume-config", "--no-progress"]
CACHE_TRAIN = ["train", "--out", "{tmp}/new", "--cache-dir", "{dir}", "--corpus-size", "300",
               "--test-size", "16", "--num-train", "16", "--steps", "1", "--batch-size", "8",
               "--eval-sequences", "8", "--device", "cpu", "--no-progress"]
CKPT = "checkpoint"
ENTRY = "synthetic-*"

ARTIFACTS = [
    Artifact("config (resume)", "probed", "config.json", RESUME, b'"abc"',
             _json_edit(lambda d: {**d, "train": {**d["train"], "batch_size": 8.5}}),
             words=("config.json",)),
    Artifact("config (probe)", "probed", "config.json", PROBE, b"[1, 2]",
             _json_edit(lambda d: {**d, "train": {**d["train"], "steps": 4.5}}),
             words=("config.json",)),
    Artifact("membership (resume)", "probed", "membership.json", RESUME, b"null",
             _set(train_ids=[-1]), words=("membership.json",)),
    Artifact("membership (probe)", "probed", "membership.json", PROBE, b'"abc"',
             _set(test_ids={"a": 1}), words=("membership.json",)),
    Artifact("metrics", "probed", "metrics.jsonl", RESUME, b"null\nnull\n",
             _metrics_line(b'{"step": "x"}'), succeeds=("missing", "empty", "truncated"),
             may_change=("metrics.jsonl", "summary.json"), prepare=_no_summary,
             words=("metrics.jsonl",)),
    Artifact("summary", "probed", "summary.json", RESUME, b"[]", _set(steps="four"),
             succeeds=KINDS, may_change=("summary.json", "metrics.jsonl"),
             check=_summary_regenerated),
    Artifact("checkpoint meta", "probed", f"{CKPT}/meta.json", PROBE, b'"abc"',
             _set(step="4"), words=("meta.json",)),
    Artifact("checkpoint state", "probed", f"{CKPT}/state.pt", RESUME, b'{"not": "a pickle"}',
             binary(_state_edit), words=("state.pt",)),
    Artifact("checkpoint model", "probed", f"{CKPT}/model.safetensors", RESUME, b"[1, 2, 3]",
             binary(_tensor_edit), words=("model.safetensors",)),
    Artifact("checkpoint ema", "probed", f"{CKPT}/ema.safetensors", PROBE, b"[1, 2, 3]",
             binary(_tensor_edit), words=("ema.safetensors",)),
    Artifact("tokenizer", "probed", "tokenizer.json", PROBE, b'"abc"',
             binary(_other_tokenizer), words=("tokenizer",)),
    Artifact("probe result", "probed", "probes/entropy.json", REPORT, b"[]",
             _set(timing=None), succeeds=("missing",), may_change=("probes/report.html",),
             words=("entropy.json",)),
    Artifact("probe examples", "probed", "probes/recovery_deterministic_examples.json", REPORT,
             b'{"a": 1}', _examples_edit, succeeds=("missing",),
             may_change=("probes/report.html",), words=("examples.json",)),
    Artifact("probe index", "probed", "probes/results.json", REPORT, b'"abc"', _set(kind=5),
             words=("results.json",)),
    Artifact("lock", "probed", ".attractor.lock", RESUME, b"[1, 2]", _set(pid="x"),
             succeeds=KINDS, prepare=_stale_lock),
    Artifact("sweep file", "swept", "sweep.json", RESUME_SWEEP, b'"abc"',
             _json_edit(lambda d: {**d, "config": {**d["config"], "sizes": [3, 1]}}),
             words=("sweep",)),
    Artifact("analysis", "swept", "analysis/analysis.json", REPORT, b"[]", _set(per_size=5),
             words=("analysis",)),
    Artifact("probe result (sweep)", "swept", f"runs/{RUN_NAME}/probes/entropy.json",
             RESUME_SWEEP, b"[]", _set(timing=None), succeeds=KINDS,
             may_change=(f"runs/{RUN_NAME}/probes/entropy*", f"runs/{RUN_NAME}/probes/results*",
                         "analysis/*", "report.html", "sweep_status.json")),
    Artifact("probe rows", "swept", f"runs/{RUN_NAME}/probes/generate.jsonl", RESUME_SWEEP,
             b"null\n", lambda data: b'{"no": "split"}\n', succeeds=KINDS,
             may_change=(f"runs/{RUN_NAME}/probes/generate*", f"runs/{RUN_NAME}/probes/results*",
                         "analysis/*", "report.html", "sweep_status.json"),
             check=_rows_redone),
    Artifact("cache meta", "cached", f"{ENTRY}/meta.json", CACHE_TRAIN, b"[]",
             _set(format="one"), succeeds=KINDS, may_change=(f"{ENTRY}/*",),
             check=_entry_rebuilt),
    Artifact("cache pool", "cached", f"{ENTRY}/pool.safetensors", CACHE_TRAIN, b"[1, 2]",
             binary(_tensor_edit), succeeds=KINDS, may_change=(f"{ENTRY}/*",),
             check=_entry_rebuilt),
    Artifact("cache tokenizer", "cached", f"{ENTRY}/tokenizer.json", CACHE_TRAIN, b'"abc"',
             binary(_other_tokenizer), succeeds=KINDS, may_change=(f"{ENTRY}/*",),
             check=_entry_rebuilt),
]


def _cases():
    for artifact in ARTIFACTS:
        for kind in KINDS:
            slow = kind != "wrong_type" or artifact.base == "swept"
            yield pytest.param(artifact, kind, id=f"{artifact.name}-{kind}",
                               marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("artifact, kind", list(_cases()))
def test_a_damaged_file_is_one_line_or_handled(artifact, kind, request, tmp_path, capsys):
    base = request.getfixturevalue(artifact.base)
    d = tmp_path / "copy"
    shutil.copytree(base, d)
    if artifact.prepare:
        artifact.prepare(d)
    (path,) = [p for p in d.glob(artifact.path)] or [d / artifact.path]
    rel = str(path.relative_to(d))
    damage(path, kind, artifact.wrong_type, artifact.wrong_shape)
    before = files(d)
    capsys.readouterr()
    code = main([a.format(dir=d, tmp=tmp_path) for a in artifact.argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    expected = 0 if kind in artifact.succeeds else 2
    assert code == expected, (code, err)
    after = files(d)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("attractor: error:"), err
        assert any(w in err for w in artifact.words) or rel in err, err
        assert after == before
    else:
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        allowed = {rel, *(k for k in changed for pattern in artifact.may_change
                          if fnmatch.fnmatch(k, pattern))}
        assert changed <= allowed, changed - allowed
        if artifact.check:
            artifact.check(d, base)
    assert leftovers(d) == []
