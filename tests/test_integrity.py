"""Integrity of run and sweep directories: locks, resumed data, validated files, full disks.

One test per reproduction of the integrity issue: each asserts a one-line error (or the correct
behaviour) and that the files already there are unchanged. Tiny in-process runs throughout;
subprocesses only where a second process is the point (a lock held by someone else). The
helpers at the top are shared with the other test_integrity_* modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _runs import train_small

from attractor.cli import main
from attractor.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY = {"corpus": 300, "test_size": 16, "batch_size": 8, "eval_sequences": 8,
        "checkpoint_every": 2, "log_every": 1}
# The CLI spelling of TINY, for `attractor train`.
TINY_ARGS = ["--corpus-size", "300", "--test-size", "16", "--batch-size", "8",
             "--eval-sequences", "8", "--checkpoint-every", "2", "--log-every", "1",
             "--precision", "fp32", "--device", "cpu", "--no-progress"]
PROBE_ARGS = ["--num-sequences", "4", "--bootstrap", "10", "--device", "cpu", "--no-progress"]


def tiny_run(path: Path, steps: int = 4, num_train: int = 16, **changes) -> Path:
    """A nano run of a few steps on a 300-sentence synthetic corpus (about a second)."""
    train_small(path, num_train, steps, **{**TINY, **changes})
    return path


def files(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``directory``."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k])
                                                                    for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def same_checkpoint(a: Path, b: Path) -> bool:
    """Whether two checkpoint directories hold the same weights, state and step (state.pt is
    compared by content: its pickled bytes may differ)."""
    fa, fb = files(a), files(b)
    if fa.keys() != fb.keys():
        return False
    state = [torch.load(d / "state.pt", weights_only=True) for d in (a, b)]
    return all(fa[k] == fb[k] for k in fa if k != "state.pt") and _equal(*state)


def leftovers(directory: Path) -> list[str]:
    """Temporary files and directories that a finished or failed command must not leave."""
    return [str(p.relative_to(directory)) for p in directory.rglob("*")
            if p.name.endswith(".tmp") or p.name == "checkpoint.tmp" or ".tmp." in p.name]


def one_line_error(argv: list[str], capsys) -> str:
    """Run ``attractor argv`` in-process: exit 2, exactly one line on stderr, no traceback."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:          # argparse refused the arguments
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


HOLDER = """
import sys, time
from attractor.lock import hold
with hold(sys.argv[1], "holder of the test", shared=sys.argv[2] == "shared"):
    print("held", flush=True)
    time.sleep(120)
"""


class Holder:
    """A second process that holds a directory's lock until stopped."""

    def __init__(self, directory: Path, shared: bool = False):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory),
                                      "shared" if shared else "exclusive"],
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert self.proc.stdout.readline().strip() == "held"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """One tiny trained run, copied by the tests that change it."""
    return tiny_run(tmp_path_factory.mktemp("integrity") / "run")


def copy_run(base: Path, tmp_path: Path, name: str = "run") -> Path:
    dst = tmp_path / name
    shutil.copytree(base, dst)
    return dst


# --------------------------------------------------------------------------- 1. locks

def test_a_second_writer_is_refused_at_once_naming_the_holder(base_run, tmp_path, capsys):
    from attractor.lock import LOCK_NAME

    run = copy_run(base_run, tmp_path)
    before = files(run)
    holder = Holder(run)
    try:
        for argv in (["train", "--out", str(run), "--resume"],
                     ["train", "--out", str(run), "--steps", "4"],
                     ["probe", "entropy", str(run), *PROBE_ARGS],
                     ["report", str(run)],
                     ["export", str(run), str(tmp_path / "export")]):
            start = time.perf_counter()
            err = one_line_error(argv, capsys)
            assert time.perf_counter() - start < 1.0, argv
            assert f"process {holder.proc.pid}" in err and "in use by" in err, err
    finally:
        holder.stop()
    assert not (tmp_path / "export").exists()
    after = files(run)
    assert {k: v for k, v in after.items() if k != LOCK_NAME} == before


def test_a_stale_lock_is_taken_over_and_a_foreign_host_is_not(base_run, tmp_path, capsys):
    from attractor.lock import LOCK_NAME, hold

    run = copy_run(base_run, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"pid": dead.pid, "host": __import__("socket").gethostname(),
              "command": "attractor train", "mode": "exclusive", "since": "earlier"}
    (run / LOCK_NAME).write_text(json.dumps(record))
    with hold(run, "test"):                     # its process is gone: taken over
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_NAME).exists()
    (run / LOCK_NAME).write_text(json.dumps({**record, "host": "elsewhere", "pid": 1}))
    err = one_line_error(["train", "--out", str(run), "--resume"], capsys)
    assert "cannot be checked" in err and f"delete {run / LOCK_NAME}" in err


def test_shared_holders_coexist_and_exclude_an_exclusive_one(tmp_path):
    from attractor.lock import hold

    holder = Holder(tmp_path / "s", shared=True)
    try:
        with hold(tmp_path / "s", "another array job", shared=True):
            pass
        with pytest.raises(UserError, match="in use by"):
            with hold(tmp_path / "s", "a whole sweep"):
                pass
    finally:
        holder.stop()


def test_only_rank_zero_takes_the_lock(tmp_path, monkeypatch):
    from attractor.lock import LOCK_NAME, hold

    holder = Holder(tmp_path / "r")
    try:
        monkeypatch.setenv("RANK", "1")
        with hold(tmp_path / "r", "rank 1"):        # writes nothing: passes through
            assert json.loads((tmp_path / "r" / LOCK_NAME).read_text())["pid"] == \
                holder.proc.pid
    finally:
        holder.stop()


def test_a_refused_start_leaves_no_directory(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    err = one_line_error(["train", "--out", str(out), *TINY_ARGS, "--num-train", "100000"],
                         capsys)
    assert "training sequences" in err and not (tmp_path / "a").exists()


# --------------------------------------------------------------------------- 2. resumed data

def test_resume_and_probe_refuse_a_changed_corpus(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"sentence number {i} is here\n" for i in range(120)))
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--corpus", f"text:{corpus}", "--tokenizer", "word",
            "--num-train", "16", "--steps", "4", *TINY_ARGS[2:]]
    assert main(argv + ["--corpus-size", "0"]) == 0
    (run / "summary.json").unlink()             # as if killed after its last checkpoint
    before = files(run)
    corpus.write_text("".join(f"another sentence {i} is here\n" for i in range(120)))
    err = one_line_error(["train", "--out", str(run), "--resume"], capsys)
    assert "differs from the data the run was trained on" in err
    err = one_line_error(["probe", "entropy", str(run), *PROBE_ARGS], capsys)
    assert "differs from the data" in err
    assert files(run) == before


# --------------------------------------------------------------------------- 3. special tokens

@pytest.mark.parametrize("kind", ["word", "bpe:300", "gpt2"])
def test_special_token_strings_in_the_corpus_stay_text(kind, tmp_path):
    from attractor.data import DataConfig, build_dataset

    lines = [f"the dog {i} sees <|endoftext|> and [PAD] [BOS] [EOS] x[EOS]y" for i in range(60)]
    lines += [f"a cat {i} runs home" for i in range(60)]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n")
    data = build_dataset(DataConfig(corpus=f"text:{corpus}", tokenizer=kind, test_size=8,
                                    corpus_size=0, block_length=64))
    specials = {data.pad_id, data.bos_id, data.eos_id}
    assert len(specials) == (2 if kind == "gpt2" else 3)
    for seq, mask in zip(data.sequences, data.loss_mask):
        real = seq[mask].tolist()
        body = real[1:-1] if real[-1] == data.eos_id else real[1:]
        assert real[0] == data.bos_id and not specials & set(body), data.decode(seq)
    text = [data.decode(s) for s in data.sequences]
    if kind != "word":                          # byte-level: the literal comes back as text
        assert any("sees <|endoftext|> and [PAD] [BOS] [EOS] x[EOS]y" in t for t in text)


# --------------------------------------------------------------------------- 4. membership

@pytest.mark.parametrize("change, words", [
    ({"train_ids": [-1]}, "outside 0.."),
    ({"train_ids": [10 ** 9]}, "outside 0.."),
    ({"train_ids": ["3"]}, "not a whole number"),
    ({"train_ids": [True]}, "not a whole number"),
    ({"train_ids": "abc"}, "not a list of ids"),
    ({"train_ids": [5, 5]}, "repeats an id"),
    ({"test_ids": None}, "not a list of ids"),
    ({"fingerprint": 7}, "not a hash"),
    ({"num_sequences": "many"}, "not a whole number"),
])
def test_membership_ids_are_validated(change, words, base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    path = run / "membership.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, **change}))
    before = files(run)
    err = one_line_error(["probe", "entropy", str(run), *PROBE_ARGS], capsys)
    assert "membership.json is damaged" in err and words in err, err
    err = one_line_error(["train", "--out", str(run), "--resume"], capsys)
    assert "membership.json is damaged" in err and words in err, err
    assert files(run) == before


def test_train_ids_equal_to_test_ids_are_refused(base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    path = run / "membership.json"
    saved = json.loads(path.read_text())
    saved["train_ids"][0] = saved["test_ids"][0]
    path.write_text(json.dumps(saved))
    err = one_line_error(["probe", "entropy", str(run), *PROBE_ARGS], capsys)
    assert "both a train and a test id" in err
    del saved["train_ids"]
    path.write_text(json.dumps(saved))
    assert "'train_ids' is missing" in one_line_error(["probe", "entropy", str(run),
                                                       *PROBE_ARGS], capsys)


# --------------------------------------------------------------------------- 5. damaged files

def _drop_step(run: Path) -> None:
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    del state["step"]
    torch.save(state, path)


@pytest.mark.parametrize("damage, words", [
    (lambda r: (r / "checkpoint" / "meta.json").write_text("{}"), "'step' is missing"),
    (lambda r: (r / "checkpoint" / "meta.json").write_text('"abc"'), "not a table of fields"),
    (lambda r: (r / "checkpoint" / "meta.json").write_text("[4]"), "not a table of fields"),
    (lambda r: (r / "metrics.jsonl").write_text("null\n" + (r / "metrics.jsonl").read_text()),
     "line 1 holds None, not a metrics row"),
    (lambda r: (r / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": "\xff"}\n'
                                                  + (r / "metrics.jsonl").read_bytes()),
     "line 1 is not a JSON row"),
    (lambda r: (r / "config.json").write_text((r / "config.json").read_text().replace(
        '"steps": 4', '"steps": 4.5')), "steps must be a whole number, got 4.5"),
    (lambda r: (r / "config.json").write_text((r / "config.json").read_text().replace(
        '"batch_size": 8', '"batch_size": 8.5')), "batch_size must be a whole number"),
    (_drop_step, "state.pt is damaged: step is None, not the step 4 of meta.json"),
])
def test_damaged_but_valid_files_are_one_line(damage, words, base_run, tmp_path, capsys):
    run = copy_run(base_run, tmp_path)
    (run / "summary.json").unlink()             # so that resuming reads the metrics too
    damage(run)
    before = files(run)
    err = one_line_error(["train", "--out", str(run), "--resume"], capsys)
    assert words in err, err
    assert files(run) == before
