import math

import numpy as np
import pytest

from attractor.analysis import transition as tr
from attractor.probes import stats


def test_ks_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=37), rng.normal(0.5, 1, size=23)
    grid = np.concatenate([a, b])
    brute = max(abs((a <= x).mean() - (b <= x).mean()) for x in grid)
    assert stats.ks_distance(a, b) == pytest.approx(brute)
    assert stats.ks_distance(a, a) == 0.0


def test_first_crossing_interpolates_in_log_size():
    sizes = np.array([10.0, 100.0, 1000.0])
    values = np.array([0.8, 0.4, 0.0])
    # 0.2 lies half way between 0.4 (at 100) and 0.0 (at 1000): sqrt(100 * 1000) in log space
    assert tr.first_crossing(sizes, values, 0.2) == pytest.approx(math.sqrt(1e5))
    assert tr.first_crossing(sizes, values, 0.9) == 10.0
    assert tr.first_crossing(sizes, values, -0.1) is None
    # after the peak only: the dip at index 0 is ignored when starting at the argmax
    assert tr.first_crossing(sizes, np.array([0.0, 0.9, 0.1]), 0.5, start=1) > 100


def test_recovery_crossing_finds_a_planted_transition():
    rng = np.random.default_rng(1)
    sizes = [10, 100, 1000, 10000]
    train_means, test_means = [0.95, 0.9, 0.5, 0.4], [0.05, 0.2, 0.48, 0.41]
    train = [np.clip(rng.normal(m, 0.05, 200), 0, 1) for m in train_means]
    test = [np.clip(rng.normal(m, 0.05, 200), 0, 1) for m in test_means]
    est = tr.recovery_crossing(sizes, train, test, eps=0.05, rng=rng, n_boot=200)
    assert 100 < est.value <= 1000
    assert est.lo <= est.value <= est.hi
    assert est.reached_fraction > 0.95
    never = tr.recovery_crossing(sizes, train, [t * 0 for t in test], 0.05, rng, n_boot=50)
    assert never.value is None and never.hi is None


def test_entropy_overlap_uses_the_fall_after_the_peak():
    rng = np.random.default_rng(2)
    sizes = [10, 100, 1000, 10000]
    train = [rng.normal(m, 1, 300) for m in (0, 0, 5, 20)]
    generated = [rng.normal(m, 1, 300) for m in (0, 10, 20, 20.1)]
    est = tr.entropy_overlap(sizes, train, generated, ks_level=0.3, rng=rng, n_boot=100)
    assert 1000 < est.value <= 10000


def test_auroc_and_spearman():
    rng = np.random.default_rng(3)
    low, high = rng.normal(0, 1, 100), rng.normal(3, 1, 100)
    out = stats.auroc_interval(-low, -high, rng, n=200)     # members have LOW entropy
    assert out["mean"] > 0.95 and out["lo"] <= out["mean"] <= out["hi"]
    x = rng.normal(size=50)
    assert stats.spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert stats.spearman(x, -x ** 3) == pytest.approx(-1.0)
    assert stats.spearman(np.ones(5), x[:5]) is None


def test_report_tables_show_undefined_values_as_a_dash():
    from attractor.report.html import table

    page = table([{"size": 32, "spearman": None, "auroc": float("nan"), "ok": True}])
    assert "None" not in page and page.count("<td>–</td>") == 2 and "True" in page
