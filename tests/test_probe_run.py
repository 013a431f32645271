"""End to end on a trained run: a nano model that memorised 32 sequences, then the probes and
the ``attractor probe`` command with its one-line errors.

The model is trained once per test session (module-scoped fixture). The module runs on one torch
thread: on a shared 2-core machine a single thread is several times faster for a model this small.
"""

import json
import math
import shutil

import pytest
import torch

from attractor.cli import main
from attractor.probes import generate as generate_probe
from attractor.probes.entropy import EntropyConfig, run_entropy
from attractor.probes.experiments import DeterministicConfig, StochasticConfig
from attractor.probes.generate import GenerateConfig, nearest_neighbours, run_generate
from attractor.probes.recovery import run_recovery
from attractor.run import load_run

FEW = {"common": {"bootstrap": 100}}

TRAIN_STEPS = 2000
pytestmark = pytest.mark.slow          # trains a model: about a minute on a busy 2-core machine


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread for this module, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def memorised_run(tmp_path_factory):
    from _runs import train_small

    run_dir = tmp_path_factory.mktemp("probe_run") / "nano32"
    train_small(run_dir, num_train=32, steps=TRAIN_STEPS, corpus=2000, test_size=64,
                data={"block_length": 12}, eval_sequences=32, optim={"ema": 0.99})
    return run_dir


def _config(cls, **changes):
    from attractor.config import from_dict

    return from_dict(cls, {**FEW, **changes})


@pytest.fixture(scope="module")
def run(memorised_run):
    return load_run(memorised_run, device="cpu")


def test_memorised_training_sequences_are_recovered_and_test_ones_are_not(run):
    # Experiment 2 at t = 0.25, averaged over 4 independent corruption draws (each of 32 train
    # and 32 test sequences has only ~2.5 corrupted tokens, so one draw is noisy).
    cfg = _config(StochasticConfig, times=(0.25,), reverse_steps=20, num_sequences=32)
    train, test = [], []
    for seed in range(4):
        result = run_recovery(run, cfg, torch.Generator().manual_seed(seed), progress=False)
        train.append(result.summary[0]["train"]["recovery"]["mean"])
        test.append(result.summary[0]["test"]["recovery"]["mean"])
    assert sum(train) / 4 >= 0.9, train
    assert sum(train) / 4 - sum(test) / 4 >= 0.5, (train, test)
    assert result.timing.forward_calls == cfg.reverse_steps + 2   # one chunk: steps, final, entropy
    assert len(result.rows) == 2 * 32


def test_zero_temperature_retrieval_recovers_memorised_sequences(run):
    cfg = _config(DeterministicConfig, fractions=(0.25,), t=0.25, reverse_steps=20,
                  num_sequences=32)
    result = run_recovery(run, cfg, torch.Generator().manual_seed(0), progress=False)
    train, test = result.summary[0]["train"]["recovery"], result.summary[0]["test"]["recovery"]
    assert train["mean"] >= 0.9 and train["lo"] > test["hi"], (train, test)


def test_training_sequences_have_near_zero_conditional_entropy(run):
    result = run_entropy(run, _config(EntropyConfig, num_sequences=32),
                         torch.Generator().manual_seed(1), progress=False)
    summary = result.summary[0]
    assert summary["train_token"]["mean"] < 0.05 * math.log(run.vocab_size), summary
    assert summary["train"]["mean"] < summary["test"]["mean"]


def test_bf16_probes_match_fp32_and_are_recorded(memorised_run, tmp_path):
    """bf16 forward passes (autocast) give the same picture; the JSON says which was used."""
    cfg = _config(EntropyConfig, num_sequences=16)
    means = {}
    for precision in ("fp32", "bf16"):
        r = run_entropy(load_run(memorised_run, device="cpu", precision=precision), cfg,
                        torch.Generator().manual_seed(1), progress=False)
        means[precision] = (r.summary[0]["train"]["mean"], r.summary[0]["test"]["mean"])
    assert means["bf16"][0] == pytest.approx(means["fp32"][0], abs=0.5)     # nats per sequence
    assert means["bf16"][1] == pytest.approx(means["fp32"][1], rel=0.1)
    out = _copy(memorised_run, tmp_path)
    assert main(["probe", "entropy", str(out), "--precision", "bf16", "--num-sequences", "4",
                 "--bootstrap", "20", "--device", "cpu", "--no-progress"]) == 0
    assert json.loads((out / "probes" / "entropy.json").read_text())["precision"] == "bf16"


def test_generation_is_graded_against_the_training_set(run, monkeypatch):
    """Planted samples: 4 training sequences, 4 held-out ones, 4 made of random ids; where the
    training copies end (their first EOS) ids the model never trained on follow, and they are
    still exact copies."""
    noise = torch.randint(4, run.vocab_size, (4, run.train_sequences.shape[1]),
                          generator=torch.Generator().manual_seed(5))
    copies = run.train_sequences[:4].clone()
    pads = copies == run.dataset.pad_id
    assert bool(pads.any())
    copies[pads] = noise[pads]                          # garbage after EOS instead of padding
    planted = torch.cat([copies, run.test_sequences[:4], noise])
    monkeypatch.setattr(generate_probe, "_sample", lambda *args: planted.clone())
    cfg = _config(GenerateConfig, num_samples=12, reverse_steps=2, num_reference=32)
    result = run_generate(run, cfg, torch.Generator().manual_seed(2), progress=False)
    rows = [r for r in result.rows if r["split"] == "generated"]
    assert [r["exact_copy"] for r in rows] == [True] * 4 + [False] * 8
    assert [r["nearest_train_id"] for r in rows[:4]] == run.train_ids[:4].tolist()
    assert [r["nearest_test_distance"] == 0 for r in rows] == [False] * 4 + [True] * 4 + [False] * 4
    # validity comes from the corpus's checker (sentences cut at L = 12 may be invalid too)
    valid = [run.checker(run.dataset.sentence(x)) for x in planted[:8]]
    assert [r["n_real"] for r in rows[:4]] == run.dataset.loss_mask[run.train_ids[:4]].sum(-1).tolist()
    assert [r["grammatical"] for r in rows] == valid + [False] * 4 and any(valid)
    assert all(r["category"] == "novel_ungrammatical" for r in rows[8:])
    assert result.summary["categories"]["exact_copy"] == pytest.approx(4 / 12)
    assert result.summary["matches_test_sequence"] == pytest.approx(4 / 12)
    assert len([r for r in result.rows if r["split"] == "train"]) == 32


def test_nearest_neighbours_against_brute_force(gen):
    q = torch.randint(0, 3, (5, 6), generator=gen)
    k = torch.randint(0, 3, (9, 6), generator=gen)
    qm = torch.rand(5, 6, generator=gen) > 0.3
    km = torch.rand(9, 6, generator=gen) > 0.3
    idx, dist, n = nearest_neighbours(q, qm, k, km, max_elements=40)     # forces several chunks
    for g in range(5):
        d = [int((((q[g] != k[j]) & (qm[g] | km[j]))).sum()) for j in range(9)]
        assert dist[g] == min(d) and idx[g] == d.index(min(d))
        assert n[g] == int((qm[g] | km[idx[g]]).sum())


def _copy(run_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def test_cli_writes_results_and_refuses_to_overwrite(memorised_run, tmp_path, capsys):
    run_dir = _copy(memorised_run, tmp_path)
    args = ["probe", "recovery", str(run_dir), "--experiment", "deterministic",
            "--fractions", "0.2,0.6", "--num-sequences", "4", "--reverse-steps", "5",
            "--device", "cpu", "--bootstrap", "50", "--no-progress"]
    assert main(args) == 0
    out = run_dir / "probes"
    for name in ("recovery_deterministic.json", "recovery_deterministic.jsonl",
                 "recovery_deterministic_examples.json", "results.json", "report.html"):
        assert (out / name).is_file(), name
    data = json.loads((out / "recovery_deterministic.json").read_text())
    assert [e["fraction"] for e in data["summary"]] == [0.2, 0.6]
    assert 0 < data["timing"]["forward_fraction"] <= 1 and data["timing"]["sequences"] == 16
    html = (out / "report.html").read_text()
    assert "tok-ok" in html        # a memorised training sequence: corrupted tokens recovered
    capsys.readouterr()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    (out / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0          # a run's directory reports its probes
    assert (out / "report.html").is_file()
    meta = json.loads((run_dir / "config.json").read_text())
    meta["train"]["steps"] *= 10                        # as if training were still under way
    (run_dir / "config.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["probe", "entropy", str(run_dir), "--num-sequences", "2", "--bootstrap", "10",
                 "--no-progress", "--device", "cpu"]) == 0
    assert "training not finished" in capsys.readouterr().err
    assert "before training finished" in (run_dir / "probes" / "report.html").read_text()


def _error(args, capsys) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("attractor: error:"), err
    return err


def test_one_line_errors(memorised_run, tmp_path, capsys):
    assert "not a run directory" in _error(["probe", "entropy", str(tmp_path)], capsys)
    run = str(memorised_run)
    for bad, message in ((["recovery", "--experiment", "stochastic", "--fractions", "0.3"],
                          "--fractions is a setting of recovery_deterministic"),
                         (["recovery", "--experiment", "deterministic", "--times", "0.3"],
                          "--times is a setting of recovery_stochastic"),
                         (["recovery", "--times", "0.5,0.5"], "--times repeats a value"),
                         (["entropy", "--entropy-times", "1e-5,1e-5"], "repeats a value"),
                         (["recovery", "--examples", "-1"],
                          "--examples (recovery_deterministic.examples) must"),
                         (["entropy", "--num-sequences", "0"], "--num-sequences must be at"),
                         (["generate", "--seed", "-1"], "--seed must be >= 0"),
                         (["recovery", "--times", "0,0.5"], "outside (0, 1]"),
                         (["recovery", "--fractions", "0.5,1.2"], "outside (0, 1]")):
        assert message in _error(["probe", bad[0], run, *bad[1:]], capsys)
    for bad in (["recovery", "--times", ""], ["recovery", "--fractions", "0.3,,0.5"]):
        with pytest.raises(SystemExit) as stop:         # argparse: one line, exit 2
            main(["probe", bad[0], run, *bad[1:]])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, bad
    with pytest.raises(SystemExit) as stop:
        main(["probe"])
    assert stop.value.code == 2 and "recovery, entropy, generate" in capsys.readouterr().err

    missing = _copy(memorised_run, tmp_path / "a")
    shutil.rmtree(missing / "checkpoint")
    assert "no checkpoint" in _error(["probe", "entropy", str(missing)], capsys)

    corrupt = _copy(memorised_run, tmp_path / "b")
    (corrupt / "checkpoint" / "ema.safetensors").write_bytes(b"not a checkpoint")
    assert "corrupt" in _error(["probe", "entropy", str(corrupt)], capsys)

    from safetensors.torch import load_file, save_file

    diverged = _copy(memorised_run, tmp_path / "d")
    ema = diverged / "checkpoint" / "ema.safetensors"
    weights = load_file(str(ema))
    save_file({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, str(ema))
    assert "diverged" in _error(["probe", "entropy", str(diverged)], capsys)

    from attractor.data.tokenizer import word_tokenizer

    other = _copy(memorised_run, tmp_path / "c")
    word_tokenizer(["only", "three", "words"]).save(str(other / "tokenizer.json"))
    assert "tokenizer has" in _error(["probe", "entropy", str(other)], capsys)


def test_denoiser_rows_are_the_rows_of_the_whole_logits(memorised_run):
    """Given rows, a run's denoiser runs the DiT's output layer on those rows alone, with the
    logits the whole call has there; a model that is not a DiT does not take rows, and
    sampler.logits_at selects them from its whole call."""
    import dataclasses

    from attractor.probes.common import pick_sequences
    from attractor.sampler import logits_at

    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, zt, sigma):
            return self.inner(zt, sigma)

    for precision in ("fp32", "bf16"):
        r = load_run(memorised_run, device="cpu", precision=precision)
        _, x, real = pick_sequences(r, 8, torch.Generator().manual_seed(0))["train"]
        real[:, -3:] = False                                      # some rows left out
        sigma = torch.full((len(x),), 0.3)
        whole = r.denoiser()(x, sigma)[real]
        calls = []
        hook = r.model.output.register_forward_hook(lambda *a: calls.append(1))
        part = r.denoiser()(x, sigma, rows=real)
        hook.remove()
        assert not calls and part.shape == whole.shape and part.dtype == whole.dtype
        torch.testing.assert_close(part.float(), whole.float(), rtol=2 ** -7, atol=1e-6)
        assert r.denoiser().takes_rows
        other = dataclasses.replace(r, model=Wrapped(r.model)).denoiser()
        assert not other.takes_rows
        assert torch.equal(logits_at(other, x, sigma, real), whole)
