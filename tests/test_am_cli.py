"""``attractor am``: tiny end-to-end sweeps, their reports, and one-line errors."""

import csv

import pytest

from attractor.cli import build_parser, main
from attractor.commands.am import config_from_args
from attractor.config import ConfigError
from attractor.io import read_json
from attractor.memories.binary import PLConfig
from attractor.memories.binary.capacity import CapacityConfig
from attractor.memories.binary.generalization import GeneralizationConfig
from attractor.report.registry import render_directory

FAST = ["--trials", "20", "--epochs", "60", "--flip-step", "0.1", "--seeds", "2"]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_capacity_sweep_writes_results_figures_and_a_report(tmp_path, capsys):
    out = tmp_path / "cap"
    assert (
        main(["am", "capacity", "--n", "60", "--alphas", "0.05,0.6", "--out", str(out), *FAST]) == 0
    )
    printed = capsys.readouterr().out
    assert printed == f"results: {out / 'results.json'}\nreport: {out / 'report.html'}\n"
    results = read_json(out / "results.json")
    assert results["kind"] == "am-capacity"
    summary = {row["alpha"]: row for row in results["summary"]}
    assert set(summary) == {0.05, 0.6} and summary[0.05]["n_seeds"] == 2
    # 3 patterns in 60 neurons are stored by every rule; at alpha = 0.6 Hebb has lost them.
    assert summary[0.05]["pl_radius"] > 0 and summary[0.05]["hebb_radius"] > 0
    assert summary[0.6]["hebb_stable"] < 0.5 and summary[0.6]["pl_stable"] > 0.9
    assert len(_rows(out / "rows.csv")) == 4
    for name in ("basin_radius.png", "margins.png", "report.html", "curves.json"):
        assert (out / name).stat().st_size > 0
    # The report is drawn from the files alone, and rendering it writes nothing else.
    (out / "report.html").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert render_directory(out) == out / "report.html"
    assert "data:image/png;base64" in (out / "report.html").read_text()
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "report.html"}
    assert after == before


def test_generalization_sweep_on_sparse_mixtures(tmp_path):
    out = tmp_path / "gen"
    args = [
        "am",
        "generalization",
        "--n",
        "80",
        "--alphas",
        "0.1,2",
        "--feature-ratio",
        "0.1",
        "--n-test",
        "40",
        "--hebb",
        "--out",
        str(out),
        *FAST,
    ]
    assert main(args) == 0
    results = read_json(out / "results.json")
    assert results["kind"] == "am-generalization" and results["n_features"] == 8
    low, high = results["summary"]
    assert low["pl_train_m1"] > 0.95 and low["pl_test_m1"] < 0.9  # memorisation at small alpha
    assert high["pl_test_m1"] > low["pl_test_m1"]  # unseen mixtures pulled in at large alpha
    assert high["pl_control_m1"] < 0.5  # a random state is never an attractor
    assert low["pl_train_entropy"] < low["pl_test_entropy"]
    assert "hebb_test_m1" in low
    assert (out / "final_overlap.png").is_file() and (out / "report.html").is_file()
    # Finished results are never replaced silently.
    assert main(args) == 2


def test_generalization_on_digits_runs(tmp_path):
    out = tmp_path / "digits"
    assert (
        main(
            [
                "am",
                "generalization",
                "--data",
                "digits",
                "--alphas",
                "0.5",
                "--n-test",
                "30",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    results = read_json(out / "results.json")
    row = results["summary"][0]
    assert row["P"] == 32 and "pl_features_m1" not in row
    assert results["n"] == 64 and results["config"]["n"] is None
    assert "N = 64 neurons" in (out / "report.html").read_text()


def test_worker_processes_give_the_same_numbers(tmp_path):
    args = ["am", "capacity", "--n", "40", "--alphas", "0.1,0.3", "--models", "pl,hebb", *FAST]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    drop = ("pl_seconds", "hebb_seconds")
    one, two = _rows(tmp_path / "one" / "rows.csv"), _rows(tmp_path / "two" / "rows.csv")
    assert [{k: v for k, v in r.items() if k not in drop} for r in one] == [
        {k: v for k, v in r.items() if k not in drop} for r in two
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["am", "capacity", "--alphas", "0.1,0"], "--alphas must be loads alpha = P/N > 0"),
        (["am", "capacity", "--alphas", "-0.5"], "--alphas must be loads alpha = P/N > 0"),
        (["am", "capacity", "--n", "1"], "--n must be >= 2 neurons"),
        (["am", "capacity", "--models", "pl,storkey"], "--models has unknown model 'storkey'"),
        (["am", "capacity", "--dynamics", "glauber"], "--dynamics is 'glauber', not one of"),
        (["am", "capacity", "--n", "0"], "--n must be >= 2 neurons"),
        (["am", "capacity", "--seed", "-1"], "--seed must be >= 0"),
        (["am", "generalization", "--seed", "-1"], "--seed must be >= 0"),
        (["am", "capacity", "--seeds", "0"], "--seeds must be >= 1"),
        (["am", "capacity", "--alphas", "0.1,,0.2"], "no empty item"),
        (["am", "capacity", "--alphas", ""], "no empty item"),
        (["am", "capacity", "--models", "pl,"], "no empty item"),
        (["am", "capacity", "--epochs", "1.5"], "expected a whole number"),
        (["am", "capacity", "--lr", "0"], "--lr must be > 0"),
        (["am", "capacity", "--clip", "-1"], "--clip must be > 0"),
        (["am", "capacity", "--trials", "0"], "--trials must be >= 1"),
        (["am", "generalization", "--alphas", "20"], "distinct mixtures"),
        (["am", "generalization", "--data", "digits", "--n", "100"], "--n is 100, but the 8x8 "
         "digits fix N = 64"),
        (["am", "generalization", "--data", "mnist"], "--data is 'mnist', not one of"),
        (["am", "generalization", "--data", "digits", "--alphas", "30"], "distinct images"),
        (["am", "generalization", "--mixture-size", "2"], "--mixture-size must be odd"),
        (["am", "generalization", "--start-overlaps", "1,1.5"], "--start-overlaps must lie in"),
        (["am", "capacity", "--workers", "0"], "--workers must be >= 1"),
        (["am", "capacity", "--beta", "inf"], "finite"),
        (["am", "capacity", "--n", "32", "--flip-step", "1e-9"], "--flip-step 1e-09 is below one "
         "neuron"),
        (["am", "capacity", "--flip-step", "0.6"], "--flip-step must be in (0, 0.5]"),
        (["am", "capacity", "--alphas", "0.1,0.1"], "--alphas are repeated"),
        (["am", "capacity", "--models", "pl,pl"], "--models are repeated"),
        (["am", "capacity", "--n", "32", "--alphas", "1e6"], "in memory"),
        (["am", "generalization", "--feature-ratio", "inf"], "finite"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert _exit_code([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()            # nothing written for bad input


def test_a_sweep_without_its_name_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["am"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert "choose a sweep: capacity or generalization" in err


@pytest.mark.parametrize("sweep, config_class", [("capacity", CapacityConfig),
                                                 ("generalization", GeneralizationConfig)])
def test_no_options_give_the_default_config(sweep, config_class):
    argv = ["am", sweep, "--out", "x"]
    assert config_from_args(build_parser(argv).parse_args(argv)) == config_class()


def test_options_reach_the_nested_configs():
    argv = ["am", "generalization", "--out", "x", "--lr", "5", "--epochs", "7", "--clip", "2",
            "--dynamics", "async", "--trials", "9", "--seeds", "2", "--hebb", "--data", "digits",
            "--n", "64", "--training.beta", "0.3"]
    config = config_from_args(build_parser(argv).parse_args(argv))
    assert config.training == PLConfig(beta=0.3, learning_rate=5.0, n_epochs=7, clip_norm=2.0)
    assert (config.retrieval.rule, config.retrieval.n_trials) == ("async", 9)
    assert (config.n_seeds, config.hebb, config.n_neurons, config.n_features) == (2, True, 64, 0)


def test_the_network_size_follows_the_data():
    assert GeneralizationConfig().n is None and GeneralizationConfig().n_neurons == 400
    assert GeneralizationConfig(data="digits").n_neurons == 64
    assert GeneralizationConfig(n=200, feature_ratio=0.1).n_features == 20
    with pytest.raises(ConfigError) as err:
        GeneralizationConfig(data="digits", n=100)
    assert err.value.path == "n"


def _exit_code(argv) -> int:
    """main's status, also for errors that argparse reports by exiting."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_other_results_are_never_touched(tmp_path, capsys):
    """A run, a sweep or another experiment in --out is refused before anything is written."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"train": {}}')
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text('{"kind": "sweep"}')
    args = ["am", "capacity", "--n", "20", "--alphas", "0.1", "--models", "hebb", *FAST]
    for target in (run, sweep):
        before = {p.name: p.read_text() for p in target.iterdir()}
        assert main([*args, "--out", str(target), "--overwrite"]) == 2
        assert "holds no am-capacity results" in capsys.readouterr().err
        assert {p.name: p.read_text() for p in target.iterdir()} == before
    done = tmp_path / "done"
    assert main([*args, "--out", str(done)]) == 0
    gen = ["am", "generalization", "--n", "200", "--alphas", "0.05", *FAST]
    assert main([*gen, "--out", str(done), "--overwrite"]) == 2
    assert "(it holds am-capacity)" in capsys.readouterr().err
    assert main([*args, "--out", str(done)]) == 2                   # same kind: needs --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--out", str(done), "--overwrite"]) == 0
    (done / "results.json").unlink()                                # an unfinished run is redone
    assert main([*args, "--out", str(done)]) == 0
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*args, "--out", str(afile)]) == 2
    assert main([*args, "--out", str(afile / "sub")]) == 2
    assert "not a directory" in capsys.readouterr().err and afile.read_text() == "x"
