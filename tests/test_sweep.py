import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attractor.errors import UserError
from attractor.sweep.config import SweepConfig, paper_spaced_sizes

REPO = Path(__file__).resolve().parents[1]
TINY = ["--sizes", "16,200", "--steps", "40", "--corpus-size", "600", "--test-size", "32",
        "--probe-sequences", "8", "--reverse-steps", "4", "--num-samples", "8",
        "--generate-steps", "4", "--entropy-sequences", "16", "--precision", "fp32",
        "--no-progress"]


def cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "attractor", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


def _files(directory: Path) -> dict:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns
            for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def killed_and_restarted(tmp_path_factory):
    """A sweep killed once its first run is fully probed, then started again."""
    out = tmp_path_factory.mktemp("sweep") / "s"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "attractor", "sweep", "--out", str(out), *TINY],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = out / "runs" / "nano-n16"
    deadline = time.time() + 240
    while time.time() < deadline and not (first / "probes" / "generate.json").is_file():
        time.sleep(0.05)
    time.sleep(0.3)                    # let it get into the second run's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _files(first)
    assert not (out / "report.html").exists(), "the sweep finished before it was killed"
    result = cli("sweep", "--out", str(out), *TINY)
    return out, before, result


def test_restart_does_not_redo_finished_runs(killed_and_restarted):
    out, before, result = killed_and_restarted
    assert result.returncode == 0, result.stderr
    after = _files(out / "runs" / "nano-n16")
    assert {k: after[k] for k in before} == before        # nothing of the first run rewritten
    status = json.loads((out / "sweep_status.json").read_text())["runs"]
    assert status[0] == {"name": "nano-n16", "trained": False, "probed": []}
    assert (out / "runs" / "nano-n200" / "probes" / "generate.json").is_file()


def test_report_is_offline_and_has_every_figure(killed_and_restarted):
    out = killed_and_restarted[0]
    html = (out / "report.html").read_text(encoding="utf-8")
    # no external reference of any kind: only data URIs and in-page content
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert not re.search(r"https?://|//cdn|@import|url\(", html)
    for caption in ("(Fig. 2)", "(Figs. 1/9)", "(Figs. 3B/12-14)", "(Figs. 4/15-17)",
                    "(Fig. 5)", "Transition diagnostics"):
        assert caption in html, caption
    assert html.count("<img") >= 6
    assert "Where does the model stop memorising?" in html and "Generated samples" in html
    for name in ("analysis.json", "recovery_vs_size.csv", "basins.csv", "entropy_vs_size.csv",
                 "per_size.csv"):
        assert (out / "analysis" / name).is_file()


def test_plan_lists_independent_jobs(tmp_path):
    result = cli("sweep", "--out", str(tmp_path / "p"), "--plan", *TINY)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [p["name"] for p in plan] == ["nano-n16", "nano-n200"]
    assert "--only nano-n16" in plan[0]["command"]
    assert (tmp_path / "p" / "sweep.json").is_file()


def _error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_bad_sweeps_get_one_line_errors(tmp_path):
    assert "empty" in _error(cli("sweep", "--out", str(tmp_path / "a"), "--sizes", ","))
    assert "increasing" in _error(cli("sweep", "--out", str(tmp_path / "a"), "--sizes", "50,10"))
    assert "unknown model" in _error(cli("sweep", "--out", str(tmp_path / "a"),
                                         "--models", "nano,huge", "--sizes", "10"))
    assert cli("sweep", "--out", str(tmp_path / "b"), "--plan", *TINY).returncode == 0
    assert "another config" in _error(cli("sweep", "--out", str(tmp_path / "b"), *TINY[:-1],
                                          "--steps", "41"))
    (tmp_path / "c").mkdir()
    assert "nothing to report" in _error(cli("report", str(tmp_path / "c")))
    assert "no finished runs" in _error(cli("report", str(tmp_path / "b")))
    assert "whole number" in _error(cli("sweep", "--out", str(tmp_path / "a"), "--sizes", "8.7"))
    assert "drop --steps" in _error(cli("sweep", "--out", str(tmp_path / "b"), "--resume-config",
                                        "--steps", "999", "--only", "nano-n16"))
    # given with --resume-config even at its default value: still refused, never ignored
    assert "drop --steps, --corpus-size" in _error(cli(
        "sweep", "--out", str(tmp_path / "b"), "--resume-config", "--steps", "2000",
        "--corpus-size", "60000", "--plan"))
    assert "not both" in _error(cli("sweep", "--out", str(tmp_path / "b"), "--resume-config",
                                    "--only", "nano-n16", "--only-index", "0"))
    assert not (tmp_path / "a").exists()


def test_a_failed_sweep_start_leaves_nothing_that_blocks_the_fix(tmp_path):
    """Every check runs before sweep.json is written, so the corrected command is accepted."""
    out = tmp_path / "s"
    too_big = [*TINY[2:], "--sizes", "16,100000"]
    assert "exceeds" in _error(cli("sweep", "--out", str(out), "--plan", *too_big))
    assert "device" in _error(cli("sweep", "--out", str(out), "--plan", *TINY, "--device", "tpu"))
    assert not (out / "sweep.json").exists()
    assert cli("sweep", "--out", str(out), "--plan", *TINY).returncode == 0
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a directory" in _error(cli("sweep", "--out", str(afile), "--plan", *TINY))


def test_default_sizes_are_log_then_linear():
    sizes = paper_spaced_sizes(59000)
    assert sizes[0] == 32 and sizes[-1] == 59000
    ratios = [b / a for a, b in zip(sizes[:5], sizes[1:5])]
    assert max(ratios) / min(ratios) < 1.1              # log-spaced head
    steps = [b - a for a, b in zip(sizes[4:], sizes[5:])]
    assert max(steps) - min(steps) <= 2                  # linear tail


def test_config_validation():
    with pytest.raises(UserError):
        SweepConfig(sizes=()).validate()
    with pytest.raises(UserError):
        SweepConfig(sizes=(10, 10)).validate()
    from dataclasses import replace

    from attractor.sweep.config import ProbeSettings, sweep_config_from_dict

    with pytest.raises(UserError, match="probe precision"):
        SweepConfig(probes=replace(ProbeSettings(), precision="fp16")).validate()
    # a sweep.json written before the probe precision existed reads as fp32, the same config
    old = SweepConfig().to_dict()
    del old["probes"]["precision"]
    assert sweep_config_from_dict(old) == SweepConfig()


def test_the_demo_is_a_sweep_the_cli_can_spell():
    """`attractor sweep` with the demo's settings builds exactly the demo's config."""
    from attractor.cli import build_parser
    from attractor.commands.sweep import config_from_args
    from attractor.sweep.demo import DEMO

    args = build_parser().parse_args([
        "sweep", "--out", "x", "--sizes", "32,64,128,256,1024,4096,16384,59000",
        "--steps", "2000", "--batch-size", "64", "--lr", "3e-3", "--warmup", "100",
        "--ema", "0.99", "--synthetic-words", "4", "--loss-on-padding", "--precision", "fp32",
        "--probe-sequences", "256", "--reverse-steps", "25", "--num-samples", "64",
        "--generate-steps", "50", "--entropy-sequences", "128", "--bootstrap", "500"])
    assert config_from_args(args) == DEMO
    bad = build_parser().parse_args(["sweep", "--out", "x", "--ema", "1.5", "--sizes", "8"])
    with pytest.raises(UserError, match="EMA"):
        from attractor.sweep.plan import plan_runs

        plan_runs(config_from_args(bad))
