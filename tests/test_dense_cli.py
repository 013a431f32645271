"""``attractor dense``: end to end on tiny sizes, from training to the re-rendered report."""

import json

import pytest
import torch

from attractor.cli import main
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
    (out / "report.html").unlink()
    assert render_directory(out).is_file()
    return results


def test_dense_circle_end_to_end(tmp_path, capsys):
    out = tmp_path / "circle"
    args = ["dense", "circle", "--out", str(out), "--ks", "2,16", "--exact-ks", "2,8", *TINY]
    assert main(args) == 0
    results = _check_run(out, "dense-circle")
    assert [r["K"] for r in results["learned"]] == [2, 16]
    # Two well-separated-on-average points: the exact minima sit on them.
    k2 = [r for r in results["exact"] if r["K"] == 2]
    assert all(abs(r["mean_radius"] - 1.0) < 0.05 for r in k2)
    assert main(args) == 2  # results are never silently overwritten
    assert "already holds results" in capsys.readouterr().err


@pytest.mark.slow
def test_dense_digits_end_to_end(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "digits"
    args = ["dense", "digits", "--out", str(out), "--ks", "10,30", "--exact-ks", "10", *TINY]
    assert main(args) == 0
    results = _check_run(out, "dense-digits")
    assert results["config"]["sigma"] == 1.5
    assert (out / "digits_samples.png").is_file()


def test_bad_training_sizes_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dense", "circle", "--out", str(tmp_path), "--ks", "1,x"])
    assert exit_info.value.code == 2
    assert main(["dense", "circle", "--out", str(tmp_path / "o"), "--sigma", "0.1",
                 "--memorised", "-1", "--quick"]) == 2
    assert "thresholds must be positive" in capsys.readouterr().err
