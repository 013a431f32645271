"""Probe metrics against closed forms and brute force: entropy (eq. 13), recovery (eq. 12),
bootstrap intervals and AUROC."""

import itertools
import math

import numpy as np
import pytest
import torch

from attractor.errors import UserError
from attractor.probes.common import check_times, chunk_rows, histograms
from attractor.probes.entropy import sequence_entropy, token_entropy
from attractor.probes.recovery import changed_positions, token_recovery
from attractor.probes.stats import auroc, average_ranks, ratio, summarize


def test_entropy_of_one_hot_is_zero_and_of_uniform_is_log_k():
    K = 11
    one_hot = 1e4 * torch.nn.functional.one_hot(torch.tensor([[3, 0]]), K).float()
    torch.testing.assert_close(token_entropy(one_hot), torch.zeros(1, 2, dtype=torch.float64))
    h = token_entropy(torch.zeros(2, 3, K))
    assert h.dtype == torch.float64
    torch.testing.assert_close(h, torch.full((2, 3), math.log(K), dtype=torch.float64))


def test_entropy_matches_the_definition(gen):
    logits = torch.randn(4, 5, 7, generator=gen)
    p = torch.softmax(logits.double(), -1)
    brute = torch.tensor([[-sum(float(q) * math.log(float(q)) for q in p[b, pos])
                           for pos in range(5)] for b in range(4)], dtype=torch.float64)
    torch.testing.assert_close(token_entropy(logits), brute)


def test_sequence_entropy_sums_real_positions_only():
    h = torch.tensor([[1.0, 2.0, 4.0], [0.5, 0.5, 8.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    torch.testing.assert_close(sequence_entropy(h, mask),
                               torch.tensor([3.0, 0.5], dtype=torch.float64))


def test_token_recovery_counts_changed_real_positions():
    x0 = torch.tensor([[1, 2, 3, 4, 0], [5, 5, 5, 5, 0]])
    zt = torch.tensor([[9, 9, 3, 9, 7], [5, 5, 5, 5, 0]])
    mask = torch.tensor([[True] * 4 + [False]] * 2)
    x_hat = torch.tensor([[1, 8, 3, 4, 7], [5, 5, 5, 5, 0]])
    changed = changed_positions(x0, zt, mask)
    assert changed.tolist() == [[True, True, False, True, False], [False] * 5]  # pad excluded
    rec = token_recovery(x0, x_hat, changed)
    assert rec[0].item() == pytest.approx(2 / 3)
    assert math.isnan(rec[1].item())                 # nothing changed: undefined, not 0 or 1


def test_bootstrap_interval_against_the_exact_resampling_distribution():
    # All 27 resamples of [0, 1, 10]: P(mean = 0) = P(mean = 10) = 1/27 > 2.5%, so the exact
    # 95% percentile interval is [0, 10]; 20000 resamples land there with overwhelming odds.
    values = np.array([0.0, 1.0, 10.0])
    exact = sorted(np.mean(c) for c in itertools.product(values, repeat=3))
    lo_exact, hi_exact = exact[0], exact[-1]
    s = summarize(values, np.random.default_rng(0), n=20000)
    est, lo, hi = s["mean"], s["lo"], s["hi"]
    assert est == pytest.approx(11 / 3)
    assert (lo, hi) == (lo_exact, hi_exact) == (0.0, 10.0)


def test_bootstrap_width_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    values = rng.normal(size=400)
    s = summarize(values, np.random.default_rng(2), n=4000)
    est, lo, hi = s["mean"], s["lo"], s["hi"]
    expected = 2 * 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    assert lo < est < hi
    assert (hi - lo) == pytest.approx(expected, rel=0.15)


def test_bootstrap_ratio_and_summary_drop_nans():
    v = np.array([[1.0, 2.0], [3.0, 4.0], [np.nan, 1.0]])
    s = summarize(v, np.random.default_rng(0), n=100, stat=ratio)
    assert s["n"] == 2 and s["mean"] == pytest.approx(4 / 6)
    assert s["lo"] <= s["mean"] <= s["hi"]
    assert summarize(np.array([]), np.random.default_rng(0))["mean"] is None


def test_average_ranks_share_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_auroc_against_pairwise_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        pos = rng.integers(0, 4, size=rng.integers(1, 7)).astype(float)
        neg = rng.integers(0, 4, size=rng.integers(1, 7)).astype(float)
        brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
        assert auroc(pos, neg) == pytest.approx(brute)
    assert auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert math.isnan(auroc(np.array([]), np.array([1.0])))


@pytest.mark.parametrize("bad", [(0.0,), (0.5, 1.5), (-0.1,), ()])
def test_noise_grid_outside_unit_interval_is_a_user_error(bad):
    with pytest.raises(UserError, match="^times "):
        check_times(bad, "times")


def test_chunk_rows_respects_the_memory_budget():
    assert chunk_rows(256, 128, 10, budget=10**12) == 256
    # two float32 (rows, 128, 50257) tensors within 2 GiB: 2**31 // (8 * 128 * 50257) = 41 rows
    assert chunk_rows(256, 128, 50257, budget=2 * 1024**3) == 41
    assert chunk_rows(256, 128, 50257, budget=1) == 1


def test_histograms_share_edges():
    h = histograms({"a": [0.0, 0.5, 1.0], "b": [0.25]}, bins=4, lo=0.0, hi=1.0)
    assert h["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert sum(h["a"]) == 3 and h["b"] == [0, 1, 0, 0]


def test_roc_and_tpr_at_low_fpr_against_brute_force():
    from attractor.probes.membership import roc, tpr_at

    rng = np.random.default_rng(7)
    for _ in range(20):
        pos = rng.integers(0, 6, size=rng.integers(1, 9)).astype(float)
        neg = rng.integers(0, 6, size=rng.integers(1, 9)).astype(float)
        fpr, tpr = roc(pos, neg)
        # every threshold "score >= c" for c among the scores gives one ROC point
        for c in np.unique(np.concatenate([pos, neg])):
            point = ((neg >= c).mean(), (pos >= c).mean())
            assert any(np.isclose(f, point[0]) and np.isclose(t, point[1])
                       for f, t in zip(fpr, tpr)), (c, point)
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
        for target in (0.0, 0.2, 0.5):
            brute = max([(pos >= c).mean() for c in np.r_[np.inf, pos, neg]
                         if (neg >= c).mean() <= target])
            assert tpr_at(pos, neg, target) == pytest.approx(brute)
        assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(pos, neg))


def test_min_k_averages_the_lowest_real_log_probabilities():
    from attractor.probes.membership import min_k

    log_p = torch.tensor([[-1.0, -5.0, -2.0, -9.0, -0.5], [-3.0, -1.0, -7.0, -2.0, -4.0]],
                         dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False, True], [True, True, True, True, True]])
    # row 0: real -1, -5, -2, -0.5; ceil(0.5 * 4) = 2 lowest: -5, -2
    # row 1: ceil(0.5 * 5) = 3 lowest: -7, -4, -3
    assert min_k(log_p, mask, 0.5).tolist() == [pytest.approx(-3.5), pytest.approx(-14 / 3)]
