import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attractor.cli import main
from attractor.sweep.config import paper_spaced_sizes

REPO = Path(__file__).resolve().parents[1]
TINY = ["--sizes", "16,200", "--seeds", "0,1", "--steps", "40", "--corpus-size", "600", "--test-size", "32",
        "--num-sequences", "8", "--reverse-steps", "4", "--num-samples", "8",
        "--num-reference", "16", "--precision", "fp32", "--no-progress"]


def _files(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def killed_and_restarted(tmp_path_factory):
    """A sweep killed once its first run is fully probed, then started again."""
    out = tmp_path_factory.mktemp("sweep") / "s"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "attractor", "sweep", "--out", str(out), *TINY],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = out / "runs" / "nano-n16-s0"
    deadline = time.time() + 240
    while time.time() < deadline and not (first / "probes" / "generate.json").is_file():
        time.sleep(0.05)
    time.sleep(0.3)                    # let it get into the second run's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _files(first)
    assert not (out / "report.html").exists(), "the sweep finished before it was killed"
    code = main(["sweep", "--out", str(out), *TINY])
    return out, before, code


@pytest.mark.slow
def test_restart_does_not_redo_finished_runs(killed_and_restarted):
    out, before, code = killed_and_restarted
    assert code == 0
    after = _files(out / "runs" / "nano-n16-s0")
    assert {k: after[k] for k in before} == before        # nothing of the first run rewritten
    status = json.loads((out / "sweep_status.json").read_text())["runs"]
    assert status[0] == {"name": "nano-n16-s0", "trained": False, "probed": []}
    for name in ("nano-n200-s0", "nano-n16-s1", "nano-n200-s1"):
        assert (out / "runs" / name / "probes" / "generate.json").is_file()


@pytest.mark.slow
def test_report_is_offline_has_every_figure_and_changes_nothing_else(killed_and_restarted):
    out = killed_and_restarted[0]
    files = _files(out)
    assert main(["report", str(out)]) == 0
    after = _files(out)
    assert {k: v for k, v in after.items() if k != "report.html"} == \
        {k: v for k, v in files.items() if k != "report.html"}
    html = (out / "report.html").read_text(encoding="utf-8")
    # no external reference of any kind: only data URIs and in-page content
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert not re.search(r"https?://|//cdn|@import|url\(", html)
    for caption in ("(Fig. 2)", "(Figs. 1/9)", "(Figs. 3B/12-14)", "(Figs. 4/15-17)",
                    "(Fig. 5)", "Transition diagnostics"):
        assert caption in html, caption
    assert html.count("<img") >= 6
    assert "Where does the model stop memorising?" in html and "Generated samples" in html
    assert "2 training seeds, then sequences" in html         # what the intervals cover
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert [r["seeds"] for r in analysis["per_size"]] == [[0, 1], [0, 1]]
    estimate = analysis["transitions"]["nano"]["recovery"]["default"]
    assert estimate["status"] in ("estimated", "left_censored", "right_censored")
    assert len(analysis["transitions"]["nano"]["entropy_only"]["by_threshold"]) == 6
    for name in ("analysis.json", "recovery_vs_size.csv", "basins.csv", "per_size.csv"):
        assert (out / "analysis" / name).is_file()


def _one_line(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_plan_lists_independent_jobs_and_reads_config_files(tmp_path, capsys):
    assert "unknown family" in _one_line(["sweep", "--out", str(tmp_path / "x"),
                                          "--families", "uniform,gpt"], capsys)
    config = tmp_path / "tiny.toml"
    config.write_text("sizes = [16, 200]\nseeds = [0, 3]\n[train]\nsteps = 40\n"
                      "[train.data]\ncorpus_size = 600\ntest_size = 32\n")
    capsys.readouterr()
    assert main(["sweep", "--out", str(tmp_path / "p"), "--plan", "--config", str(config),
                 "--steps", "41"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in plan] == ["nano-n16-s0", "nano-n200-s0", "nano-n16-s3",
                                         "nano-n200-s3"]
    assert plan[2]["seed"] == 3
    capsys.readouterr()
    assert main(["sweep", "--out", str(tmp_path / "f"), "--plan", "--config", str(config),
                 "--families", "uniform,ar", "--seeds", "0"]) == 0
    names = [p["name"] for p in json.loads(capsys.readouterr().out)]
    assert names == ["nano-n16-s0", "nano-n200-s0", "ar-nano-n16-s0", "ar-nano-n200-s0"]
    assert "--only nano-n16-s0" in plan[0]["command"]
    saved = json.loads((tmp_path / "p" / "sweep.json").read_text())["config"]
    assert saved["train"]["steps"] == 41 and saved["seeds"] == [0, 3]
    config.write_text("[train]\nstepz = 40\n")
    assert "tiny.toml: train.stepz is not a setting" in _one_line(
        ["sweep", "--out", str(tmp_path / "q"), "--config", str(config)], capsys)
    assert not (tmp_path / "q").exists()


def test_bad_sweeps_get_one_line_errors(tmp_path, capsys):
    b = str(tmp_path / "b")
    assert main(["sweep", "--out", b, "--plan", *TINY]) == 0
    assert "another config" in _one_line(["sweep", "--out", b, *TINY[:-1], "--steps", "41"],
                                         capsys)
    (tmp_path / "c").mkdir()
    assert "nothing to report" in _one_line(["report", str(tmp_path / "c")], capsys)
    assert "no analysis yet" in _one_line(["report", b], capsys)
    assert "drop --steps" in _one_line(["sweep", "--out", b, "--resume-config", "--steps", "999",
                                        "--only", "nano-n16-s0"], capsys)
    # given with --resume-config even at its default value: still refused, never ignored
    assert "drop --corpus-size, --steps" in _one_line(
        ["sweep", "--out", b, "--resume-config", "--steps", "2000", "--corpus-size", "60000",
         "--plan"], capsys)
    assert "not both" in _one_line(["sweep", "--out", b, "--resume-config", "--only",
                                    "nano-n16-s0", "--only-index", "0"], capsys)
    assert "no run named" in _one_line(["sweep", "--out", b, "--resume-config", "--only",
                                        "nano-n16"], capsys)


def test_a_failed_sweep_start_leaves_nothing_that_blocks_the_fix(tmp_path, capsys):
    """Every check runs before sweep.json is written, so the corrected command is accepted."""
    out = str(tmp_path / "s")
    too_big = [*TINY[2:], "--sizes", "16,100000"]
    assert "exceeds" in _one_line(["sweep", "--out", out, "--plan", *too_big], capsys)
    assert "device" in _one_line(["sweep", "--out", out, "--plan", *TINY, "--device", "cuda"],
                                 capsys)
    assert not (tmp_path / "s" / "sweep.json").exists()
    assert main(["sweep", "--out", out, "--plan", *TINY]) == 0
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "not a directory" in _one_line(["sweep", "--out", str(afile), "--plan", *TINY],
                                          capsys)


def test_default_sizes_are_log_then_linear():
    sizes = paper_spaced_sizes(59000)
    assert sizes[0] == 32 and sizes[-1] == 59000
    ratios = [b / a for a, b in zip(sizes[:5], sizes[1:5])]
    assert max(ratios) / min(ratios) < 1.1              # log-spaced head
    steps = [b - a for a, b in zip(sizes[4:], sizes[5:])]
    assert max(steps) - min(steps) <= 2                  # linear tail


def test_the_demo_is_a_sweep_the_cli_can_spell():
    """`attractor sweep --config demo` is exactly the demo; options change only themselves."""
    from dataclasses import replace

    from attractor.cli import build_parser
    from attractor.commands.sweep import config_from_args
    from attractor.sweep.demo import demo_config

    def parse(*argv):
        return config_from_args(build_parser(["sweep"]).parse_args(["sweep", "--out", "x",
                                                                    *argv]))

    assert parse("--config", "demo") == demo_config()
    assert parse("--config", "demo", "--seeds", "0,1") == replace(demo_config(), seeds=(0, 1))


@pytest.mark.slow
def test_a_three_family_sweep_resumes_after_a_kill_and_compares(tmp_path):
    """Kill a uniform/masked/ar sweep once its first run is probed; the restart finishes the rest."""
    out = tmp_path / "f"
    argv = ["sweep", "--out", str(out), *TINY, "--sizes", "16", "--seeds", "0",
            "--families", "uniform,masked,ar"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "attractor", *argv], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "runs" / "nano-n16-s0"
    deadline = time.time() + 240
    while time.time() < deadline and not (first / "probes" / "generate.json").is_file():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _files(first)
    assert before and not (out / "report.html").exists(), "the sweep finished before the kill"
    assert main(argv) == 0
    after = _files(first)
    assert {k: after[k] for k in before} == before
    status = {r["name"]: r for r in json.loads((out / "sweep_status.json").read_text())["runs"]}
    assert status["nano-n16-s0"]["trained"] is False
    for name in ("masked-nano-n16-s0", "ar-nano-n16-s0"):
        assert status[name]["trained"] is True
        assert (out / "runs" / name / "probes" / "generate.json").is_file()
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert {r["model"] for r in analysis["per_size"]} == {"nano", "masked nano", "ar nano"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Families compared" in html and "masked nano" in html and "ar nano" in html
