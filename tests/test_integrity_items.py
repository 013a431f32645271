"""Integrity reproductions, continued: checkpoints that do not fit, full disks, devices, and the
smaller items (damaged caches, non-finite outputs, escaping, line breaks, seeds, memory-heavy
sizes, a diverged binary memory, an empty --out, an offline hub). Each asserts a one-line error
or the correct behaviour, and that the files already there are unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from test_integrity import (
    PROBE_ARGS,
    TINY_ARGS,
    copy_run,
    files,
    leftovers,
    one_line_error,
    same_checkpoint,
)

from attractor.cli import main
from attractor.errors import UserError


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    from test_integrity import tiny_run

    return tiny_run(tmp_path_factory.mktemp("integrity_items") / "run")


# --------------------------------------------------------------------------- 6. checkpoints

def _rewrite_state(run: Path, change) -> None:
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    change(state["optimizer"])
    torch.save(state, path)


def _rewrite_weights(run: Path, which: str, change) -> None:
    from safetensors.torch import load_file, save_file

    path = run / "checkpoint" / f"{which}.safetensors"
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))


def _first(d: dict) -> str:
    return next(iter(d))


@pytest.mark.parametrize("damage, words", [
    (lambda r: _rewrite_state(r, lambda o: o["state"][0].update(
        exp_avg=torch.zeros(3, 5))), "exp_avg of parameter 0 is torch.float32 (3, 5)"),
    (lambda r: _rewrite_state(r, lambda o: o["state"][1].update(
        exp_avg_sq=o["state"][1]["exp_avg_sq"].double())), "exp_avg_sq of parameter 1"),
    (lambda r: _rewrite_state(r, lambda o: o["param_groups"][0]["params"].pop()),
     "does not fit the optimiser"),
    (lambda r: _rewrite_weights(r, "ema", lambda w: w.update(
        {_first(w): w[_first(w)][:1].clone()})), "ema.safetensors does not fit the model"),
    (lambda r: _rewrite_weights(r, "model", lambda w: w.pop(_first(w))),
     "model.safetensors does not fit the model: it lacks"),
    (lambda r: _rewrite_weights(r, "model", lambda w: w.update(
        {_first(w): w[_first(w)].half()})), "is torch.float16"),
])
def test_checkpoint_tensors_are_checked_before_loading(damage, words, base_run, tmp_path,
                                                       capsys):
    run = copy_run(base_run, tmp_path)
    (run / "summary.json").unlink()
    damage(run)
    before = files(run)
    err = one_line_error(["train", "--out", str(run), "--resume"], capsys)
    assert words in err, err
    assert files(run) == before


# --------------------------------------------------------------------------- 7. full disks

def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, monkeypatch, capsys):
    from attractor.train import checkpoint

    run, reference = tmp_path / "run", tmp_path / "reference"
    argv = [*TINY_ARGS, "--num-train", "16", "--steps", "4"]
    assert main(["train", "--out", str(reference), *argv]) == 0
    calls = {"n": 0}
    real_save = torch.save

    def save(obj, path, *a, **kw):              # the second checkpoint's state.pt
        calls["n"] += 1
        if calls["n"] == 2:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos "
                               "64 vs 0\nPytorchStreamWriter failed writing file: "
                               "No space left on device")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    err = one_line_error(["train", "--out", str(run), *argv], capsys)
    assert "cannot write the checkpoint of step 4" in err and "No space left" in err
    assert leftovers(run) == [] and checkpoint.checkpoint_step(run) == 2
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
    assert same_checkpoint(run / "checkpoint", reference / "checkpoint")


def test_a_failed_start_leaves_nothing_and_a_cut_one_is_replaced(tmp_path, monkeypatch,
                                                                   capsys):
    from attractor import io

    run = tmp_path / "run"
    argv = ["train", "--out", str(run), *TINY_ARGS, "--num-train", "16", "--steps", "2"]
    real = io.write_json

    def full(path, obj):
        if Path(path).name == "config.json":
            raise UserError(f"cannot write {path}: No space left on device")
        return real(path, obj)

    monkeypatch.setattr(io, "write_json", full)
    monkeypatch.setattr("attractor.train.rundir.write_json", full)
    assert "No space left" in one_line_error(argv, capsys)
    assert not run.exists()                     # nothing half-made: the same command works
    monkeypatch.undo()
    # a start killed after membership.json: the same command replaces it, --resume says so
    run.mkdir()
    (run / "tokenizer.json").write_text("{}")
    (run / "membership.json").write_text("{}")
    (run / ".config.json.x1y2.tmp").write_text("{")
    assert "start was cut short" in one_line_error(["train", "--out", str(run), "--resume"],
                                                   capsys)
    assert main(argv) == 0
    assert leftovers(run) == [] and (run / "summary.json").is_file()


# --------------------------------------------------------------------------- 8. devices

@pytest.mark.parametrize("argv", [
    ["train", "--out", "{out}", "--device", "mps", *TINY_ARGS[:-3]],
    ["train", "--out", "{out}", "--device", "cuda:7", *TINY_ARGS[:-3]],
    ["sweep", "--out", "{out}", "--device", "mps", "--sizes", "16", "--corpus-size", "300",
     "--test-size", "16"],
    ["sweep", "--out", "{out}", "--device", "mps", "--sizes", "16", "--corpus-size", "300",
     "--test-size", "16", "--plan"],
    ["probe", "entropy", "{run}", "--device", "mps"],
    ["probe", "generate", "{run}", "--device", "cuda"],
])
def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(
        argv, base_run, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run = copy_run(base_run, tmp_path)
    before = files(run)
    argv = [a.format(out=tmp_path / "out", run=run) for a in argv]
    assert "not available here" in one_line_error(argv, capsys)
    assert not (tmp_path / "out").exists() and files(run) == before


# --------------------------------------------------------------------------- 9. the rest

def test_a_damaged_cache_entry_is_rebuilt(tmp_path):
    from attractor.data import DataConfig, build_dataset
    from attractor.data.cache import entry_dir

    cfg, cache = DataConfig(corpus_size=300, test_size=16), tmp_path / "cache"
    good = build_dataset(cfg, cache_dir=cache)
    entry = entry_dir(cfg, cache)
    for name, content in (("meta.json", b"[]"), ("meta.json", b'{"format": 1}'),
                          ("pool.safetensors", b"\x00" * 64), ("tokenizer.json", b"\xff")):
        original = (entry / name).read_bytes()
        (entry / name).write_bytes(content)
        rebuilt = build_dataset(cfg, cache_dir=cache)
        assert rebuilt.fingerprint == good.fingerprint
        assert (entry / name).read_bytes() == original, name     # the entry was replaced
    assert sorted(p.name for p in cache.iterdir()) == [entry.name]


def test_non_finite_outputs_are_one_line(base_run, tmp_path, capsys, monkeypatch):
    from attractor.run import Run

    run = copy_run(base_run, tmp_path)
    real = Run.denoiser

    def nan_denoiser(self):
        call = real(self)
        return lambda zt, sigma: call(zt, sigma) * float("nan")

    monkeypatch.setattr(Run, "denoiser", nan_denoiser)
    before = files(run)
    err = one_line_error(["probe", "entropy", str(run), *PROBE_ARGS], capsys)
    assert "not finite" in err and files(run) == before


def test_every_field_of_an_examples_file_is_escaped():
    from attractor.probes.examples import example_blocks

    record = {"split": "<script>alert(1)</script>", "id": "<b>7</b>", "level": 0.5,
              "n_real": 1, "original": ["<i>"], "corrupted": ["x"], "recovered": ["y"],
              "changed": [True], "correct": [False]}
    html = "".join(example_blocks([record], "<t>"))
    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;7" in html


def test_only_newlines_end_corpus_lines(tmp_path):
    from attractor.data.corpus import text_sentences

    path = tmp_path / "c.txt"
    path.write_bytes("one\u2028two\x0cthree\x85four\r\nfive\n\n six \nseven".encode())
    assert text_sentences(str(path)) == ["one\u2028two\x0cthree\x85four", "five", "six",
                                         "seven"]
    assert text_sentences(str(path), limit=2) == ["one\u2028two\x0cthree\x85four", "five"]


def test_seeds_are_whole_numbers_of_any_size(tmp_path, capsys):
    from attractor.cli import build_parser
    from attractor.commands.train import config_from_args

    big = 2 ** 70 + 1                           # not representable as a float
    args = build_parser(["train"]).parse_args(["train", "--out", "x", "--seed", str(big)])
    assert config_from_args(args).seed == big
    assert "expected a whole number, got '1e30'" in one_line_error(
        ["train", "--out", str(tmp_path / "x"), "--seed", "1e30"], capsys)
    assert "below 2**63" in one_line_error(["probe", "entropy", str(tmp_path),
                                            "--seed", str(big)], capsys)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, words", [
    (["train", "--out", "{out}", *TINY_ARGS[:-1], "--batch-size", "1e8"],
     "one training step of batch 100000000"),
    (["train", "--out", "{out}", *TINY_ARGS[:-1], "--block-length", "65536"],
     "one training step of batch 8 (L = 65536"),
    (["train", "--out", "{out}", *TINY_ARGS[:-1], "--corpus", "text:/dev/zero"],
     "not a regular file"),
    (["probe", "entropy", "{run}", "--bootstrap", "1e8"],
     "probe entropy with 100,000,000 resamples of 256 values"),
    (["sweep", "--out", "{out}", "--sizes", "16", "--corpus-size", "300", "--test-size", "16",
      "--bootstrap", "1e8", "--plan"], "100,000,000 resamples"),
    (["sweep", "--out", "{out}", "--sizes", "16", "--corpus-size", "300", "--test-size", "16",
      "--batch-size", "1e8", "--plan"], "one training step of batch 100000000"),
])
def test_memory_heavy_sizes_are_refused_with_the_estimate(argv, words, base_run, tmp_path,
                                                          capsys):
    run = copy_run(base_run, tmp_path)
    before = files(run)
    err = one_line_error([a.format(out=tmp_path / "out", run=run) for a in argv], capsys)
    assert words in err, err
    if "regular" not in words:
        assert "of memory (estimated)" in err and "iB" in err, err
    assert not (tmp_path / "out" / "sweep.json").exists() and files(run) == before
    assert argv[0] == "sweep" or not (tmp_path / "out").exists()


def test_a_large_text_file_read_whole_is_refused_with_the_estimate(tmp_path, monkeypatch):
    from attractor import budget
    from attractor.data.corpus import text_sentences

    path = tmp_path / "c.txt"
    path.write_text("a line\n" * 1000)
    monkeypatch.setattr(budget, "host_memory", lambda: 10_000)
    with pytest.raises(UserError, match=r"needs about 27\.3 KiB of memory"):
        text_sentences(str(path))
    assert len(text_sentences(str(path), limit=5)) == 5    # a part of it is read lazily


def test_diverged_binary_memory_is_refused_not_reported_as_zero(tmp_path, capsys):
    from attractor.memories.binary.measures import coupling_stats, margins

    err = one_line_error(["am", "capacity", "--out", str(tmp_path / "am"), "--lr", "1e308",
                          "--n", "40", "--alphas", "0.1", "--n-seeds", "1", "--epochs", "3",
                          "--trials", "2", "--no-progress"], capsys)
    assert "diverged at epoch 1" in err and "--lr" in err
    nan = torch.full((3, 3), float("nan")).numpy()
    assert all(v != v for v in coupling_stats(nan).values())
    assert (margins(nan, torch.ones(2, 3).numpy()) != margins(nan, torch.ones(2, 3).numpy())
            ).all()


@pytest.mark.parametrize("command", [["train", "--out", ""], ["sweep", "--out", " "],
                                     ["probe", "entropy", "--model", "m", "--out", ""],
                                     ["export", "{run}", ""],
                                     ["am", "capacity", "--out", ""],
                                     ["dense", "circle", "--quick", "--out", ""]])
def test_an_empty_out_is_refused(command, base_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(run=base_run) for a in command]
    assert "output directory is empty" in one_line_error(argv, capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_offline_hub_name_fails_fast(tmp_path, capsys, monkeypatch):
    pytest.importorskip("datasets")
    from attractor.data import corpus

    monkeypatch.setattr(corpus, "_hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    err = one_line_error(["train", "--out", str(tmp_path / "r"), "--corpus",
                          "hf:no-such-user/no-such-dataset", "--steps", "2"], capsys)
    assert "could not load hf dataset" in err and time.perf_counter() - start < 10
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_half_finished_sweep_reports_its_missing_runs(tmp_path, capsys):
    from test_integrity_files import SWEEP_TOML

    config = tmp_path / "two.toml"
    config.write_text(SWEEP_TOML.replace("sizes = [16]", "sizes = [16, 24]"))
    out = tmp_path / "sweep"
    assert main(["sweep", "--out", str(out), "--config", str(config), "--only",
                 "nano-n16-s0", "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not finished yet, so not in this report: nano-n24-s0." in html
