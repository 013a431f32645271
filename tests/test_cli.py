"""The command line as a whole: options made from configs, and what every error looks like."""

import argparse

import pytest

from attractor import cli
from attractor.errors import UserError
from attractor.io import prepare_results_dir, read_json


def _error(argv, capsys) -> str:
    """Run ``attractor argv`` in-process; it must fail with exactly one line on stderr."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as stop:          # argparse refused the arguments
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    return err.strip()


@pytest.mark.parametrize("argv, words", [
    (["train", "--out", "x", "--sizes", "1"], "unrecognized arguments"),
    (["train", "--out", "x", "--steps", "8.7"], "whole number"),
    (["train", "--out", "x", "--lr", "inf"], "finite"),
    (["train", "--out", "x", "--seed", "-1"], "--seed must be >= 0"),
    (["train", "--out", "x", "--fraction", "1.5"], "--fraction must lie in (0, 1]"),
    (["train", "--out", "x", "--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (["train", "--out", "x", "--model", "gigantic"], "--model is 'gigantic'"),
    (["train", "--out", "x", "--device", "tpu"], "--device is 'tpu'"),
    (["sweep", "--out", "x", "--sizes", ""], "no empty item"),
    (["sweep", "--out", "x", "--sizes", "50,10"], "--sizes must be strictly increasing"),
    (["sweep", "--out", "x", "--models", "nano,huge"], "--models has unknown model config"),
    (["sweep", "--out", "x", "--times", "0.5,0.5"], "repeats a value"),
    (["info", "--vocab", "1"], "at least 2 tokens"),
    (["am"], "capacity"),
    (["probe"], "recovery, entropy, generate"),
])
def test_bad_input_is_one_line(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert words in _error(argv, capsys)
    assert not (tmp_path / "x").exists()            # checked before anything is written


def test_help_lists_every_setting_with_its_default(capsys):
    """Whatever the configs declare shows up in --help: each option with the default(s)."""
    from attractor.options import _help

    parser = cli.build_parser(["sweep"])
    with pytest.raises(SystemExit):
        parser.parse_args(["sweep", "--help"])
    text = "".join(capsys.readouterr().out.split())        # argparse wraps lines anywhere
    args = parser.parse_args(["sweep", "--out", "x"])
    for flag, members in args.config_options.groups.items():
        assert f"--{flag}" in text and "".join(_help(members).split()).replace("%%", "%") in text


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
    from attractor.commands import info

    monkeypatch.setattr(info, "run", _failing(error))
    code = cli.main(["info"])
    assert code == (130 if isinstance(error, KeyboardInterrupt) else 2)
    assert capsys.readouterr().err.strip() == expected


def test_a_closed_pipe_is_not_an_error(monkeypatch):
    import os
    import sys

    from attractor.commands import info

    monkeypatch.setattr(info, "run", _failing(BrokenPipeError(32, "Broken pipe")))
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))
    assert cli.main(["info"]) == 0


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


def test_resume_hint_only_where_there_is_a_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    hint = cli._resume_hint
    assert "--resume" in hint(argparse.Namespace(command="train", out=str(run)))
    assert hint(argparse.Namespace(command="train", out=str(tmp_path / "none"))) == ""
    assert "again" in hint(argparse.Namespace(command="sweep", out=str(tmp_path)))


def test_damaged_sweep_files_are_one_line_errors(tmp_path):
    from attractor.report.registry import render_directory
    from attractor.sweep.runner import load_sweep_config

    sweep = tmp_path / "s"
    sweep.mkdir()
    for config in ("5", '{"train": 3}', '{"probes": null}', '{"sizes": [3, 1]}'):
        (sweep / "sweep.json").write_text(f'{{"kind": "sweep", "config": {config}}}')
        with pytest.raises(UserError, match="not a valid sweep config"):
            load_sweep_config(sweep)
        with pytest.raises(UserError):
            render_directory(sweep)
