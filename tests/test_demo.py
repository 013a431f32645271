"""Smoke test of the README's main job, in its one-minute version."""

import json

import pytest

from attractor.cli import main


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys, one_thread):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "nano-n32-s0" in html and "nano-n3000-s0" in html
    # the smallest training set is memorised: its training sequences are recovered better
    per_size = json.loads((out / "analysis" / "analysis.json").read_text())["per_size"]
    small, large = per_size[0], per_size[-1]
    assert small["num_train"] == 32 and large["num_train"] == 3000
    assert small["train_recovery"]["mean"] > small["test_recovery"]["mean"]
    assert small["train_token_entropy"]["mean"] < large["train_token_entropy"]["mean"]
