"""Smoke test of the README's main job, in its two-minute version."""

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "attractor", "demo", "--quick", "--out",
                             str(out), "--no-progress"], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in result.stdout
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "nano-n32" in html and "nano-n3000" in html
    # the smallest training set is memorised: its training sequences are recovered better
    import json

    per_size = json.loads((out / "analysis" / "analysis.json").read_text())["per_size"]
    small, large = per_size[0], per_size[-1]
    assert small["num_train"] == 32 and large["num_train"] == 3000
    assert small["train_recovery"]["mean"] > small["test_recovery"]["mean"]
    assert time.perf_counter() - start < 600
