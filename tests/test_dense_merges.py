"""Off-data minima of the exact energy explained by two merging wells, against closed forms."""

import math

import pytest
import torch

from attractor.memories.dense import merges, sweeps
from attractor.memories.dense.classify import Thresholds

SIGMA = 0.15


pytestmark = pytest.mark.usefixtures("one_thread")   # small matrices: threads only cost


def _on_circle(angles) -> torch.Tensor:
    a = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([a.cos(), a.sin()], -1)


def _pair(gap_in_sigma: float) -> torch.Tensor:
    """Two points on the unit circle whose chord is ``gap_in_sigma`` sigma."""
    half = math.asin(gap_in_sigma * SIGMA / 2.0)
    return _on_circle([-half, half])


def _minima(patterns):
    starts = 1.5 * torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return sweeps.exact_minima(patterns, SIGMA, starts, Thresholds())


def _symmetric_ring_minimum(k: int, sigma: float) -> tuple[float, list[float]]:
    """Radius r and Hessian eigenvalues of the minimum next to one of K evenly spaced points.

    By symmetry the minimum is r * xi_0; with theta_j = 2 pi j / K the responsibilities there are
    p_j ~ exp(r cos theta_j / sigma^2), r = sum_j p_j cos theta_j, and Cov_p(xi) is diagonal in
    (radial, tangential): sum p cos^2 - r^2 and sum p sin^2. Plain floats, no torch.
    """
    thetas = [2 * math.pi * j / k for j in range(k)]
    r = 1.0
    for _ in range(200):
        w = [math.exp((r * math.cos(t) - r) / sigma**2) for t in thetas]
        r = sum(wi * math.cos(t) for wi, t in zip(w, thetas)) / sum(w)
    w = [math.exp((r * math.cos(t) - r) / sigma**2) for t in thetas]
    p = [wi / sum(w) for wi in w]
    radial = sum(pi * math.cos(t) ** 2 for pi, t in zip(p, thetas)) - r**2
    tangential = sum(pi * math.sin(t) ** 2 for pi, t in zip(p, thetas))
    return r, sorted([1 - radial / sigma**2, 1 - tangential / sigma**2])


def test_evenly_spaced_k8_has_one_training_minimum_per_point_with_closed_form_curvature():
    patterns = _on_circle([2 * math.pi * j / 8 for j in range(8)])
    row, per = _minima(patterns)
    assert row["gap_sigma"] == pytest.approx(2 * math.sin(math.pi / 8) / SIGMA)  # 5.1 sigma
    assert row["resolvable"] and row["only_training_minima"]
    assert row["minima"] == row["memorised_minima"] == 8
    assert row["merged_pair_minima"] == row["split_pair_minima"] == 0
    assert row["unexplained_off_data_minima"] == row["close_pairs"] == 0
    r, eig = _symmetric_ring_minimum(8, SIGMA)
    # Each neighbour at 45 degrees (5.1 sigma) has weight e = exp(-(2 - 2 cos 45deg) / (2 sigma^2))
    # ~ 2e-6: tangential eigenvalue ~ 1 - 2 e sin^2(45deg) / sigma^2 ~ 1 - 1e-4, radial
    # ~ 1 - 2 e (1 - cos 45deg)^2 / sigma^2 ~ 1 - 2e-5: "near 1", and exactly how near.
    assert 1 - 2e-4 < eig[0] < 1 - 5e-5 and 1 - 5e-5 < eig[1] < 1 - 5e-6
    for m in per:
        assert m["radius"] == pytest.approx(r, abs=1e-9)
        assert m["eigenvalues"] == pytest.approx(eig, abs=1e-9)
    assert row["lowest_eig_memorised_min"] == pytest.approx(eig[0], abs=1e-9)


def test_pair_closer_than_two_sigma_merges_into_one_off_data_minimum_at_the_midpoint():
    patterns = _pair(1.5)
    row, per = _minima(patterns)
    assert row["gap_sigma"] == pytest.approx(1.5)
    assert not row["resolvable"] and not row["only_training_minima"]
    assert row["minima"] == row["off_data_minima"] == row["merged_pair_minima"] == 1
    assert row["unexplained_off_data_minima"] == row["split_pair_minima"] == 0
    (m,) = per
    assert m["point"] == pytest.approx(patterns.mean(0).tolist(), abs=1e-7)
    # Hess E(midpoint) = I - (d / 2 sigma)^2 u u^T: eigenvalues 1 - 0.75^2 and 1.
    assert m["eigenvalues"] == pytest.approx([1 - 0.75**2, 1.0], abs=1e-7)


def test_pair_farther_than_two_sigma_keeps_two_training_point_minima():
    patterns = _pair(2.5)
    row, per = _minima(patterns)
    assert row["resolvable"] and row["only_training_minima"]
    assert row["minima"] == row["memorised_minima"] == 2
    assert row["merged_pair_minima"] + row["merged_memorised_minima"] + row["split_pair_minima"] == 0
    c = 1.25**2
    t = merges.split_position(c)
    mid, half = patterns.mean(0), (patterns[1] - patterns[0]) / 2
    expected = sorted([(mid - t * half).tolist(), (mid + t * half).tolist()])
    assert sorted(m["point"] for m in per) == [pytest.approx(e, abs=1e-7) for e in expected]
    for m in per:  # along the pair 1 - c (1 - t*^2), across it 1
        assert m["eigenvalues"] == pytest.approx([1 - c * (1 - t * t), 1.0], abs=1e-7)


def test_pair_just_above_two_sigma_splits_into_two_off_data_minima():
    row, _ = _minima(_pair(2.02))
    assert row["resolvable"] and row["minima"] == row["off_data_minima"] == 2
    assert row["split_pair_minima"] == 2
    assert row["merged_pair_minima"] == row["unexplained_off_data_minima"] == 0


def test_split_position_solves_the_two_well_equation():
    assert merges.split_position(0.5) == merges.split_position(1.0) == 0.0
    for c in (1.01, 1.5625, 4.0):
        t = merges.split_position(c)
        assert 0 < t < 1 and math.tanh(c * t) == pytest.approx(t, abs=1e-12)
    assert merges.split_offset(4 * SIGMA, SIGMA) < 1e-3 < merges.split_offset(2.02 * SIGMA, SIGMA)


def test_an_off_data_minimum_far_from_any_close_pair_is_unexplained():
    patterns = _on_circle([2 * math.pi * j / 8 for j in range(8)])
    points = torch.cat([patterns[:1], torch.zeros(1, 2, dtype=torch.float64)])
    fields = merges.explain(points, torch.tensor([True, False]), torch.tensor([0.9, 0.5]),
                            patterns, SIGMA, delta_m=0.1)
    assert fields["unexplained_off_data_minima"] == 1
    assert fields["merged_pair_minima"] == fields["split_pair_minima"] == 0
    assert fields["lowest_eig_memorised_min"] == pytest.approx(0.9)


def test_summary_by_k_counts_sets_and_restricts_to_resolvable_ones():
    def row(k, resolvable, only, off=0, merged=0, eig=0.9):
        return {"K": k, "minima": k - merged, "resolvable": resolvable, "only_training_minima": only,
                "gap_sigma": 3.0 if resolvable else 1.0, "close_pairs": int(not resolvable),
                "off_data_minima": off, "merged_pair_minima": merged, "split_pair_minima": 0,
                "unexplained_off_data_minima": off - merged, "merged_memorised_minima": 0,
                "lowest_eig_memorised_min": eig, "lowest_eig_memorised": eig}
    rows = [row(4, True, True), row(4, False, False, 1, 1, 0.5), row(4, True, True, eig=0.7),
            row(8, False, False, 2, 1)]
    k4, k8 = merges.summarise_by_k(rows)
    assert (k4["sets"], k4["only_training_sets"], k4["resolvable_sets"]) == (3, 2, 2)
    assert k4["only_training_fraction"] == pytest.approx(2 / 3)
    assert k4["only_training_fraction_resolvable"] == 1.0
    assert k4["one_minimum_per_point_sets"] == 2
    assert (k4["lowest_eig_memorised_min"], k4["lowest_eig_memorised_min_resolvable"]) == (0.5, 0.7)
    assert k8["only_training_fraction_resolvable"] is None and k8["unexplained_off_data_minima"] == 1
