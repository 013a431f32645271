"""``attractor dense``: end to end on tiny sizes, from training to the re-rendered report."""

import json

import pytest
import torch

from attractor.cli import build_parser, main
from attractor.commands.dense import config_from_args
from attractor.config import ConfigError
from attractor.memories.dense.experiments import CircleConfig, DigitsConfig, quick
from attractor.report.registry import render_directory

TINY = ["--quick", "--iterations", "60", "--samples", "60"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _check_run(out, kind):
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == kind
    for row in results["learned"]:
        total = row["memorised"] + row["spurious"] + row["generalised"]
        assert total == pytest.approx(1.0)
        assert row["delta_m"] == pytest.approx(results["thresholds"]["memorised"] * row["spacing"])
    for row in results["exact"]:
        assert row["minima"] == row["memorised_minima"] + row["off_data_minima"] >= 1
        assert row["off_data_minima"] == (row["merged_pair_minima"] + row["split_pair_minima"]
                                          + row["unexplained_off_data_minima"])
        assert row["resolvable"] == (row["gap_sigma"] > results["merge_gap_sigma"])
    by_k = results["exact_by_k"]
    assert [r["K"] for r in by_k] == sorted({r["K"] for r in results["exact"]})
    assert sum(r["sets"] for r in by_k) == len(results["exact"])
    page = (out / "report.html").read_text()
    assert "data:image/png;base64" in page and "http" not in page
    assert "merged pair" in page and "unexplained_off_data_minima" in page
    # The report is drawn from the files alone, and rendering it writes nothing else.
    (out / "report.html").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert render_directory(out) == out / "report.html"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "report.html"} == before
    return results


def test_dense_circle_end_to_end(tmp_path, capsys):
    out = tmp_path / "circle"
    args = ["dense", "circle", "--out", str(out), "--ks", "2,16", "--exact-ks", "2,8", *TINY]
    assert main(args) == 0
    assert capsys.readouterr().out == f"report: {out / 'report.html'}\n"
    results = _check_run(out, "dense-circle")
    assert [r["K"] for r in results["learned"]] == [2, 16]
    # Two well-separated-on-average points: the exact minima sit on them.
    k2 = [r for r in results["exact"] if r["K"] == 2]
    assert all(abs(r["mean_radius"] - 1.0) < 0.05 for r in k2)
    assert main(args) == 2  # results are never silently overwritten
    assert "already holds results" in capsys.readouterr().err


def test_single_training_sizes_make_every_figure(tmp_path):
    out = tmp_path / "one"
    assert main(["dense", "circle", "--out", str(out), "--ks", "8", "--exact-ks", "8",
                 "--no-progress", *TINY]) == 0
    assert (out / "landscape.png").is_file() and (out / "samples.png").is_file()


@pytest.mark.slow
def test_dense_digits_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    args = ["dense", "digits", "--out", str(out), "--ks", "10,30", "--exact-ks", "10", *TINY]
    assert main(args) == 0
    results = _check_run(out, "dense-digits")
    assert results["config"]["sigma"] == 1.5
    assert (out / "digits_samples.png").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--ks", "1,x"], "expected a number"),
    (["--ks", "1,4"], "--ks needs training sizes K of at least 2"),
    (["--ks", "2,,4"], "no empty item"),
    (["--memorised", "-1"], "--memorised must be > 0"),
    (["--sigma", "0"], "--sigma must be > 0"),
    (["--sigma", "-1"], "--sigma must be > 0"),
    (["--threads", "-1"], "--threads must be >= 0"),
    (["--samples", "0"], "--samples must be >= 1"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--ks", "2,2"], "--ks has repeated training sizes"),
    (["--sigma", "1e300"], "--sigma must lie in"),
    (["--exact-ks", "100000000"], "do not fit"),
    (["--sampler", "heun"], "--sampler is 'heun', not one of sde, ode"),
    (["--sigma-min", "2"], "--sigma-max must exceed sigma_min"),
    (["--iterations", "0"], "--iterations must be >= 1"),
    (["--entropy-sigmas", "0.1,-1"], "--entropy-sigmas must be noise levels > 0"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    try:
        code = main(["dense", "circle", "--out", str(out), "--quick", *argv])
    except SystemExit as stop:              # argparse reports bad types by exiting
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_directory_of_other_results_is_refused_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"train": {}}')
    assert main(["dense", "circle", "--out", str(run), "--overwrite", *TINY]) == 2
    assert "holds no dense-circle results" in capsys.readouterr().err
    assert [p.name for p in run.iterdir()] == ["config.json"]
    assert (run / "config.json").read_text() == '{"train": {}}'


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="must lie in") as err:
        CircleConfig(sigma=1e9)
    assert err.value.path == "sigma"
    with pytest.raises(ConfigError, match="at least 2") as err:
        CircleConfig(exact_ks=(1, 4))
    assert err.value.path == "exact_ks"
    with pytest.raises(ConfigError, match="1497 training images") as err:
        DigitsConfig(learned_ks=(10, 1500))
    assert err.value.path == "learned_ks"


def test_dense_alone_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["dense"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert "choose an experiment: circle or digits" in err


def _config(argv):
    argv = ["dense", *argv]
    return config_from_args(build_parser(argv).parse_args(argv))


@pytest.mark.parametrize("name, config_class", [("circle", CircleConfig),
                                                ("digits", DigitsConfig)])
def test_no_options_give_the_default_config(name, config_class):
    assert _config([name, "--out", "x"]) == config_class()
    assert _config([name, "--out", "x", "--quick"]) == quick(config_class())


def test_options_reach_the_nested_configs():
    config = _config(["digits", "--out", "x", "--quick", "--ks", "10,20", "--iterations", "7",
                      "--sampler", "ode", "--spurious", "0.5", "--generation.samples", "9"])
    gen = config.generation
    assert config.learned_ks == (10, 20) and gen.model.iterations == 7 and gen.method == "ode"
    assert gen.thresholds.spurious == 0.5 and gen.samples == 9
    assert gen.model.hidden == DigitsConfig().generation.model.hidden == 256
    assert config.exact_ks == quick(DigitsConfig()).exact_ks
