"""Every registry entry builds and runs: probes, schedules, model configs and commands."""

import dataclasses
import json

import pytest
import torch

from attractor.config import from_dict, to_dict
from attractor.io import read_json
from attractor.model import DiT, count_parameters
from attractor.model.configs import MODEL_CONFIGS
from attractor.probes.output import write_probe
from attractor.probes.registry import PROBES, run_probe
from attractor.probes.report import render_report
from attractor.schedule import SCHEDULES, get_schedule

# The smallest settings that still exercise every code path of each probe.
SMALL = {"num_sequences": 3, "reverse_steps": 2, "num_samples": 3, "num_reference": 3,
         "fractions": (0.3,), "times": (0.3,), "common": {"bootstrap": 10}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from _runs import train_small

    from attractor.run import load_run

    run_dir = tmp_path_factory.mktemp("registry") / "run"
    train_small(run_dir, num_train=8, steps=2, corpus=300, test_size=8)
    return load_run(run_dir, device="cpu")


def _small(config_class):
    names = {f.name for f in dataclasses.fields(config_class)}
    return from_dict(config_class, {k: v for k, v in SMALL.items() if k in names})


@pytest.mark.parametrize("name", list(PROBES))
def test_every_probe_runs_writes_and_renders(name, tiny_run):
    probe = PROBES[name]
    assert from_dict(probe.config, to_dict(probe.config())) == probe.config()
    result = run_probe(name, tiny_run, _small(probe.config), torch.Generator().manual_seed(0),
                       progress=False)
    path = write_probe(tiny_run, name, result, overwrite=True)
    data = read_json(path)
    assert data["probe"] == name and json.dumps(data)
    tables = probe.tables(data)
    assert tables and all(rows and isinstance(rows[0], dict) for _, rows in tables)
    assert all(png.startswith(b"\x89PNG") for _, png in probe.figures(data))
    assert name in read_json(path.parent / "results.json")["probes"]
    assert probe.title in render_report(path.parent).read_text()


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_schedule_is_a_signal_level(name):
    schedule = get_schedule(name)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    alpha = schedule.alpha(t)
    assert alpha[0] == pytest.approx(1.0) and 0 < alpha[-1] < 1.01e-3    # clean to ~noise
    assert bool((alpha[1:] < alpha[:-1]).all()) and bool((schedule.dalpha(t) < 0).all())


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_every_model_config_builds_with_its_counted_parameters(name):
    cfg = MODEL_CONFIGS[name]
    if cfg.hidden > 256:                      # counting by formula only: too large to build here
        cfg = dataclasses.replace(cfg, hidden=cfg.heads * 2, blocks=1)
    model = DiT(cfg, 17)
    assert sum(p.numel() for p in model.parameters()) == count_parameters(cfg, 17)
    logits = model(torch.zeros(2, 5, dtype=torch.long), torch.ones(2))
    assert logits.shape == (2, 5, 17)


def test_every_command_builds_its_options():
    from attractor.cli import COMMANDS, build_parser

    for name in COMMANDS:
        parser = build_parser([name])
        with pytest.raises(SystemExit) as stop:
            parser.parse_args([name, "--help"])
        assert stop.value.code == 0
