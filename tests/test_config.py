"""The config spine: building, overriding, checking and saving configs, and their options."""

import argparse
import dataclasses
import json

import pytest

from attractor.config import (
    ConfigError,
    differences,
    from_dict,
    leaves,
    nest,
    override,
    read_config_file,
    to_dict,
)
from attractor.data import DataConfig
from attractor.errors import UserError
from attractor.model.configs import MODEL_CONFIGS
from attractor.options import add_config_options, resolve
from attractor.sweep.config import SweepConfig
from attractor.train.config import TrainConfig


def test_override_applies_nested_and_dotted_changes():
    cfg = override(TrainConfig(), {"steps": 7, "data": {"block_length": 64},
                                   "optim.lr": 0.5, "data.mode": "wrap"})
    assert cfg.steps == 7 and cfg.data.block_length == 64 and cfg.data.mode == "wrap"
    assert cfg.optim.lr == 0.5 and cfg.data.corpus == "synthetic"      # others untouched
    assert nest({"a.b": 1, "a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


def test_nest_keeps_every_leaf_however_deep_the_shared_prefix():
    flat = {"p.r.b": 1, "p.r.n": 2, "p.e.b": 3, "p.e": {"n": 4, "x.y": 5}, "q": 6, "p.r.z.w": 7}
    assert nest(flat) == {"p": {"r": {"b": 1, "n": 2, "z": {"w": 7}},
                                "e": {"b": 3, "n": 4, "x": {"y": 5}}}, "q": 6}


def test_a_bare_option_reaches_every_leaf_of_its_name(tmp_path, capsys):
    """`--bootstrap 10` sets the bootstrap of every probe, not of the last one nested."""
    import json

    from attractor.cli import main
    capsys.readouterr()
    assert main(["sweep", "--out", str(tmp_path / "s"), "--plan", "--bootstrap", "10",
                 "--num-sequences", "8"]) == 0
    saved = json.loads((tmp_path / "s" / "sweep.json").read_text())["config"]["probes"]
    boots = {name: p["common"]["bootstrap"] for name, p in saved.items()}
    assert len(boots) == 4 and set(boots.values()) == {10}, boots
    sizes = {name: p["num_sequences"] for name, p in saved.items() if "num_sequences" in p}
    assert len(sizes) == 3 and set(sizes.values()) == {8}, sizes


def test_errors_name_the_field():
    cases = [({"data": {"block_length": 1}}, "data.block_length", "at least 2"),
             ({"data": {"block_lenght": 3}}, "data.block_lenght", "not a setting"),
             ({"steps": "many"}, "steps", "whole number"),
             ({"steps": 2.5}, "steps", "whole number"),
             ({"optim": {"lr": float("inf")}}, "optim.lr", "finite"),
             ({"loss_on_padding": 1}, "loss_on_padding", "true or false"),
             ({"model_name": "huge"}, "model_name", "not one of"),
             ({"optim": 3}, "optim", "table")]
    for changes, path, words in cases:
        with pytest.raises(ConfigError) as err:
            override(TrainConfig(), changes)
        assert err.value.path == path and words in err.value.problem, (changes, err.value)


def test_numbers_from_files_are_converted_exactly():
    cfg = override(TrainConfig(), {"steps": 1e3, "optim": {"lr": 1}})
    assert cfg.steps == 1000 and isinstance(cfg.steps, int) and cfg.optim.lr == 1.0
    with pytest.raises(ConfigError):
        override(TrainConfig(), {"steps": 2.0**60})       # not exactly representable


def test_a_model_name_swaps_in_its_preset_before_the_changes():
    cfg = override(TrainConfig(), {"model_name": "tiny", "model": {"dropout": 0.0}})
    assert cfg.model == dataclasses.replace(MODEL_CONFIGS["tiny"], dropout=0.0)
    assert override(TrainConfig(), {"model_name": "micro"}).model == MODEL_CONFIGS["micro"]


def test_round_trip_through_json_and_renamed_fields():
    cfg = override(TrainConfig(), {"num_train": 5, "data": {"split_seed": 3}})
    assert from_dict(TrainConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    old = to_dict(cfg)
    old["data"]["seed"] = old["data"].pop("split_seed")        # as saved by earlier versions
    assert from_dict(TrainConfig, old) == cfg
    assert differences(cfg, TrainConfig()) == ["data.split_seed: 0 -> 3", "num_train: None -> 5"]


def test_direct_construction_checks_itself():
    with pytest.raises(ConfigError, match="block_length"):
        DataConfig(block_length=1)
    with pytest.raises(ConfigError, match="num_train"):
        TrainConfig(fraction=0.5, num_train=3)


def test_config_files(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('steps = 9\n[data]\nblock_length = 16\n[optim]\nlr = 2e-3\n')
    cfg = resolve(TrainConfig(), str(path), {"steps": 11})          # the command line wins
    assert (cfg.steps, cfg.data.block_length, cfg.optim.lr) == (11, 16, 2e-3)
    path.write_text("[data]\nblock_lenght = 16\n")
    with pytest.raises(UserError, match="run.toml: data.block_lenght is not a setting"):
        resolve(TrainConfig(), str(path), {})
    path.write_text("steps = [\n")
    with pytest.raises(UserError, match="not a valid config file"):
        read_config_file(path)
    with pytest.raises(UserError, match="shipped configs: demo"):
        read_config_file(tmp_path / "none.toml")
    assert read_config_file("demo")["models"] == ["nano"]               # shipped by name


def _defaults_from_options(cfg, exclude=()):
    parser = argparse.ArgumentParser()
    options = add_config_options(parser, cfg, exclude)
    args = parser.parse_args([])
    return options, override(cfg, options.changes(args))


@pytest.mark.parametrize("cfg, exclude", [
    (TrainConfig(), ()),
    (SweepConfig(), ("train.model_name", "train.model", "train.fraction", "train.num_train",
                     "train.seed", "train.family")),
])
def test_command_line_defaults_are_the_dataclass_defaults(cfg, exclude):
    options, parsed = _defaults_from_options(cfg, exclude)
    assert parsed == cfg
    flags = {m.path: flag for flag, ms in options.groups.items() for m in ms}
    expected = {leaf.path for leaf in leaves(cfg)
                if not any(leaf.path == e or leaf.path.startswith(e + ".") for e in exclude)}
    assert set(flags) == expected                          # every setting has an option


def test_a_bare_option_sets_every_setting_of_its_name():
    parser = argparse.ArgumentParser()
    options = add_config_options(parser, SweepConfig())
    args = parser.parse_args(["--bootstrap", "50", "--probes.entropy.common.bootstrap", "70",
                              "--sizes", "8,16", "--no-loss-on-padding"])
    cfg = override(SweepConfig(), options.changes(args))
    assert cfg.analysis.bootstrap == 50 and cfg.probes["generate"].common.bootstrap == 50
    assert cfg.probes["entropy"].common.bootstrap == 70            # the dotted one wins
    assert cfg.sizes == (8, 16) and cfg.train.loss_on_padding is False
    err = ConfigError("probes.entropy.num_sequences", "must be at least 1")
    assert options.describe(err) == ("--num-sequences (probes.entropy.num_sequences) must be "
                                     "at least 1")
    for bad in (["--sizes", "8,,16"], ["--steps", "8.5"], ["--lr", "nan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_sweeps_refuse_settings_that_each_run_sets():
    for path, value in (("seed", 3), ("num_train", 10), ("model_name", "tiny")):
        with pytest.raises(ConfigError, match=f"train.{path}"):
            override(SweepConfig(), {"train": {path: value}})
    with pytest.raises(ConfigError, match="probes.nope"):
        override(SweepConfig(), {"probes": {"nope": {"x": 1}}})
    with pytest.raises(ConfigError, match="probes.entropy.entropy_times"):
        override(SweepConfig(), {"probes": {"entropy": {"entropy_times": [0.5, 0.5]}}})
