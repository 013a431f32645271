"""The command line as a whole: argument types, help texts, and what every error looks like."""

import argparse

import pytest

from attractor import cli
from attractor.commands import args as types
from attractor.errors import UserError
from attractor.io import prepare_results_dir, read_json


def test_lists_reject_empty_items_and_fractions():
    assert types.floats("0.1, 0.5") == (0.1, 0.5)
    assert types.ints("8,32,1e3,100.0") == (8, 32, 1000, 100)
    assert types.names("nano,micro") == ("nano", "micro")
    for bad in ("", " ", ",", "1,,2", "1,", "a,1"):
        with pytest.raises(argparse.ArgumentTypeError):
            types.floats(bad)
    for bad in ("8.7", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            types.ints(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        types.names("nano,,micro")


def test_bounded_numbers():
    assert types.positive_int("3") == 3 and types.nonnegative_int("0") == 0
    assert types.positive_float("0.5") == 0.5
    for check, bad in ((types.positive_int, "0"), (types.nonnegative_int, "-1"),
                       (types.positive_float, "0"),
                       (types.positive_int, "1.5"), (types.positive_float, "inf")):
        with pytest.raises(argparse.ArgumentTypeError):
            check(bad)


def test_help_states_defaults_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "optimiser steps per run (default 2000)" in text
    assert "comma-separated model configs (nano, micro, tiny, small, medium) (default nano)" in text
    assert "(default fp32) (default" not in text and "default None" not in text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "peak learning rate (default 0.001)" in text and "(default 2000)" in text


def test_info_rejects_a_vocabulary_below_two(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["info", "--vocab", "0"])
    assert stop.value.code == 2 and "at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["info", "--vocab", "1"])
    assert "at least 2 tokens" in capsys.readouterr().err


def _failing(error):
    def func(args):
        raise error
    return func


@pytest.mark.parametrize("error, expected", [
    (KeyboardInterrupt(), "attractor: interrupted"),     # no run in x yet: no resume hint
    (PermissionError(13, "Permission denied", "/x/y"), "attractor: error: Permission denied: /x/y"),
    (UserError("bad thing"), "attractor: error: bad thing"),
])
def test_errors_end_in_one_line(monkeypatch, capsys, error, expected):
    parser = cli.build_parser()
    original = parser.parse_args

    def parse(argv):
        parsed = original(argv)
        parsed.func = _failing(error)
        return parsed

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    code = cli.main(["train", "--out", "x"])
    err = capsys.readouterr().err.strip()
    assert code == (130 if isinstance(error, KeyboardInterrupt) else 2)
    assert err == expected


def test_damaged_json_is_a_user_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{bad")
    with pytest.raises(UserError, match="not valid JSON"):
        read_json(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="UTF-8"):
        read_json(path)


def test_results_dirs_hold_one_kind(tmp_path):
    out = prepare_results_dir(tmp_path / "a", "kind-a", False, {"x": 1})
    assert read_json(out / "config.json") == {"kind": "kind-a", "config": {"x": 1}}
    prepare_results_dir(out, "kind-a", False, {"x": 2})       # unfinished: redone
    (out / "results.json").write_text('{"kind": "kind-a"}')
    with pytest.raises(UserError, match="--overwrite"):
        prepare_results_dir(out, "kind-a", False, {})
    with pytest.raises(UserError, match="holds kind-a"):
        prepare_results_dir(out, "kind-b", True, {})
    prepare_results_dir(out, "kind-a", True, {"x": 3})
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no kind-a results"):
        prepare_results_dir(other, "kind-a", True, {})
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_a_family_without_its_subcommand_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["am"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "capacity or generalization" in err


def test_resume_hint_only_where_there_is_a_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    hint = cli._resume_hint
    assert "--resume" in hint(argparse.Namespace(command="train", out=str(run)))
    assert hint(argparse.Namespace(command="train", out=str(tmp_path / "none"))) == ""
    assert "again" in hint(argparse.Namespace(command="sweep", out=str(tmp_path)))


def test_a_closed_pipe_is_not_an_error(monkeypatch):
    import sys

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    parser = cli.build_parser()
    original = parser.parse_args
    monkeypatch.setattr(parser, "parse_args",
                        lambda argv: argparse.Namespace(**{**vars(original(argv)), "func": closed}))
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(sys, "stderr", open(__import__("os").devnull, "w"))
    assert cli.main(["info"]) == 0


def test_damaged_sweep_files_are_one_line_errors(tmp_path):
    from attractor.report.registry import render_directory
    from attractor.sweep.runner import load_sweep_config

    sweep = tmp_path / "s"
    sweep.mkdir()
    for config in ("5", "{}", '{"data": {}, "probes": null}'):
        (sweep / "sweep.json").write_text(f'{{"kind": "sweep", "config": {config}}}')
        with pytest.raises(UserError, match="not a valid sweep config"):
            load_sweep_config(sweep)
        with pytest.raises(UserError):
            render_directory(sweep)


def test_data_pools_are_bounded_before_any_work():
    from dataclasses import replace

    from attractor.data import DataConfig

    for change in ({"block_length": 10**8}, {"corpus_size": 10**12}):
        with pytest.raises(UserError, match="at most"):
            replace(DataConfig(), **change).validate()
