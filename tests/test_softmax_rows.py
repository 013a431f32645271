"""Chunked softmax-row statistics against float64 whole-tensor formulas."""

import math

import pytest
import torch

from attractor import softmax_rows
from attractor.softmax_rows import entropy, log_normalizer, row_stats, sample


def _logits(shape, K, scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, K, generator=g) * scale


@pytest.mark.parametrize("K,scale,chunk_bytes", [(2, 1.0, 8), (7, 5.0, 64), (301, 3.0, 4096),
                                                 (301, 30.0, 1 << 22)])
def test_row_stats_match_float64_brute_force(K, scale, chunk_bytes):
    logits = _logits((3, 5), K, scale)
    z = torch.randint(0, K, (3, 5), generator=torch.Generator().manual_seed(1))
    z[0, 0] = logits[0, 0].argmax()                     # z is the argmax: best other = 2nd largest
    stats = row_stats(logits, z, chunk_bytes=chunk_bytes)
    ref = logits.double()
    log_z = ref.logsumexp(-1)
    torch.testing.assert_close(stats.log_z, log_z, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(log_normalizer(logits, chunk_bytes), log_z, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stats.at_index, ref.gather(-1, z[..., None]).squeeze(-1))
    others = ref.scatter(-1, z[..., None], float("-inf")).amax(-1)
    torch.testing.assert_close(stats.best_other, others)
    p = ref.softmax(-1)
    torch.testing.assert_close(stats.prob_at_index(), p.gather(-1, z[..., None]).squeeze(-1),
                               rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(stats.prob_best_other(),
                               p.scatter(-1, z[..., None], -1.0).amax(-1), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("K,scale,chunk_bytes", [(2, 1.0, 8), (5, 40.0, 40), (1000, 2.0, 1 << 14)])
def test_entropy_matches_float64_brute_force(K, scale, chunk_bytes):
    logits = _logits((4, 3), K, scale, seed=2)
    logp = logits.double().log_softmax(-1)
    brute = -(logp.exp() * logp).sum(-1)
    torch.testing.assert_close(entropy(logits, chunk_bytes), brute, rtol=1e-5, atol=1e-7)
    h, log_z = softmax_rows.entropy_and_log_normalizer(logits, chunk_bytes)
    assert torch.equal(h, entropy(logits, chunk_bytes))
    torch.testing.assert_close(log_z, logits.double().logsumexp(-1), rtol=1e-6, atol=1e-6)


def test_entropy_limits_and_minus_infinity():
    K = 11
    assert torch.allclose(entropy(torch.zeros(2, K)), torch.full((2,), math.log(K), dtype=torch.float64))
    peaked = torch.full((1, K), float("-inf"))
    peaked[0, 3] = 0.0
    assert entropy(peaked).item() == 0.0                   # 0 log 0 = 0, not NaN
    assert softmax_rows.entropy_and_log_normalizer(peaked)[1].item() == 0.0
    two = torch.full((1, K), float("-inf"))
    two[0, :2] = 1.5
    assert entropy(two).item() == pytest.approx(math.log(2), abs=1e-7)


@pytest.mark.parametrize("gap", [18.0, 25.0, 30.0, 40.0])
def test_entropy_of_a_nearly_one_hot_row_keeps_its_digits(gap):
    """Off-argmax mass eps = (K - 1) e^-gap from 1e-7 down to 1e-16: H ~ eps (1 + gap) must
    come out to 1e-6 relative, not rounded away with 1 + eps in float32."""
    K = 1000
    logits = torch.zeros(1, K)
    logits[0, 7] = gap
    eps = (K - 1) * math.exp(-gap)
    p_top = 1 / (1 + eps)
    p_other = math.exp(-gap) / (1 + eps)
    exact = -(p_top * math.log(p_top) + (K - 1) * p_other * math.log(p_other))
    assert entropy(logits).item() == pytest.approx(exact, rel=1e-6)


def test_bf16_logits_give_the_statistics_of_their_float32_values():
    logits = _logits((2, 6), 50, 4.0, seed=3).bfloat16()
    z = torch.zeros(2, 6, dtype=torch.long)
    a, b = row_stats(logits, z, chunk_bytes=256), row_stats(logits.float(), z, chunk_bytes=256)
    for name in ("log_z", "at_index", "best_other"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
    torch.testing.assert_close(entropy(logits, 256), entropy(logits.float(), 256))


def test_shifting_bf16_rows_is_exact():
    """The convert-then-reduce path for bf16 chunks gives the float32 path's numbers exactly."""
    logits = _logits((6,), 77, 5.0, seed=4).bfloat16()
    logits[1, 3] = float("-inf")
    out_low, out_ref = torch.empty(6, 77), torch.empty(6, 77)
    m_low = softmax_rows.shift_by_row_max(logits, out_low)
    m_ref = softmax_rows.shift_by_row_max(logits.float(), out_ref)
    assert torch.equal(m_low, m_ref) and torch.equal(out_low, out_ref)
    assert torch.equal(m_ref[:, 0], logits.float().amax(-1))
    assert float(out_ref.amax()) == 0.0 and out_ref[1, 3] == float("-inf")
    wide = torch.tensor([[1000.0, 1000.0 + 1e-5, 1000.0 - 2e-5]], dtype=torch.float64)
    out = torch.empty(1, 3)                              # float64 rows: shifted, then rounded
    m = softmax_rows.shift_by_row_max(wide, out)
    assert torch.equal(out, (wide - m.double()).float())
    torch.testing.assert_close(softmax_rows.log_normalizer(wide), wide.logsumexp(-1),
                               rtol=0, atol=1e-8)


@pytest.mark.parametrize("chunk_bytes", [16, 1 << 22])
def test_sample_frequencies_match_softmax(chunk_bytes):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0], dtype=torch.float64)
    n = 40000
    logits = probs.log().float().expand(n, 5).clone()                 # log 0 = -inf
    draws = sample(logits, torch.Generator().manual_seed(0), chunk_bytes)
    freq = torch.bincount(draws, minlength=5).double() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert bool(((freq - probs).abs() <= 4 * se + 1e-12).all()), freq
    assert int((draws == 4).sum()) == 0                               # zero-probability ids never


def test_sample_is_reproducible_and_keeps_the_batch_shape():
    logits = _logits((3, 4), 50, 2.0, seed=5)
    a = sample(logits, torch.Generator().manual_seed(7))
    b = sample(logits.bfloat16(), torch.Generator().manual_seed(7))
    assert a.shape == (3, 4) and a.dtype == torch.long
    assert torch.equal(a, sample(logits, torch.Generator().manual_seed(7)))
    assert (a == b).float().mean() > 0.8                    # bf16 rounding moves few draws


def test_results_do_not_depend_on_the_chunking():
    """Chunks of 1 row, 3 rows (a short last chunk) and all rows give the same numbers."""
    logits = _logits((5, 2), 97, 3.0, seed=8)
    z = torch.randint(0, 97, (5, 2), generator=torch.Generator().manual_seed(2))
    sizes = (4 * 97, 3 * 4 * 97, 1 << 22)
    draws = [sample(logits, torch.Generator().manual_seed(9), 2 * c) for c in sizes]
    stats = [row_stats(logits, z, c) for c in sizes]
    ents = [entropy(logits, c) for c in sizes]
    for i in (1, 2):
        assert torch.equal(draws[i], draws[0])
        assert torch.equal(ents[i], ents[0])
        for name in ("log_z", "at_index", "best_other"):
            assert torch.equal(getattr(stats[i], name), getattr(stats[0], name))


def test_a_row_shared_by_every_position_gives_the_statistics_of_its_copies():
    """An expanded row (a denoiser that ignores its input) is reduced once, with the results
    of the materialised tensor."""
    g = torch.Generator().manual_seed(0)
    row = torch.randn(37, generator=g, dtype=torch.float64)
    row[5] = row.max() + 1.0                          # a unique maximum, then a tie below it
    row[9] = row[11] = row[5] - 0.5
    shared = row.expand(3, 4, 37)
    copy = shared.contiguous()
    assert softmax_rows._shared_row(shared) is not None and softmax_rows._shared_row(copy) is None
    index = torch.randint(0, 37, (3, 4), generator=g)
    index[0, 0] = 5                                   # the argmax itself: best other is the tie
    a, b = softmax_rows.row_stats(shared, index), softmax_rows.row_stats(copy, index)
    for name in ("log_z", "at_index", "best_other"):     # the chunked path exponentiates in fp32
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-6)
    assert float(a.best_other[0, 0]) == float(row[9])
    torch.testing.assert_close(softmax_rows.log_normalizer(shared),
                               softmax_rows.log_normalizer(copy), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(softmax_rows.entropy(shared), softmax_rows.entropy(copy),
                               rtol=1e-12, atol=1e-12)
    for u, v in zip(softmax_rows.entropy_and_log_normalizer(shared),
                    softmax_rows.entropy_and_log_normalizer(copy), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)
    assert torch.equal(softmax_rows.argmax(shared), copy.argmax(-1))


def test_argmax_is_the_first_maximal_index_in_every_dtype():
    g = torch.Generator().manual_seed(1)
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        x = (torch.randn(50, 300, generator=g) * 2).round().to(dtype)    # many ties
        assert torch.equal(softmax_rows.argmax(x), x.argmax(-1))


def test_the_fast_route_is_narrow_logits_widened_on_a_cpu():
    out = torch.empty(2, 3)
    for dtype in (torch.bfloat16, torch.float16):
        assert softmax_rows.fast_route(torch.zeros(2, 3, dtype=dtype), out)
    for dtype in (torch.float32, torch.float64):
        assert not softmax_rows.fast_route(torch.zeros(2, 3, dtype=dtype), out)
    meta = torch.zeros(2, 3, dtype=torch.bfloat16, device="meta")
    assert not softmax_rows.fast_route(meta, torch.empty(2, 3, device="meta"))


def test_exp_through_exp2_is_within_its_stated_error():
    """exp2(d log2 e) against float64 exp(d): relative error at most 1.2e-7 + 7.3e-8 |d| (the
    bound of the docs, checked with 8e-8); -inf gives 0; d is left in bits. The plain route is
    torch's exp, bit for bit."""
    d = torch.cat([-torch.rand(20000, generator=torch.Generator().manual_seed(0)) * 80,
                   torch.tensor([0.0, -1e-30, float("-inf")])])
    fast = softmax_rows.exp_(d.clone(), True, out=torch.empty_like(d))
    exact = d.double().exp()
    rel = ((fast.double() - exact).abs() / exact.clamp_min(1e-300))[:-1]
    assert bool((rel <= d.double().abs()[:-1] * 8e-8 + 1.2e-7).all()), float(rel.max())
    assert fast[-1] == 0.0 and fast[-3] == 1.0
    scaled = d.clone()
    softmax_rows.exp_(scaled, True)
    assert torch.equal(scaled, torch.exp2(d * softmax_rows.LOG2_E))       # in place: exp2 of bits
    assert torch.equal(softmax_rows.exp_(d.clone(), False), d.exp())


@pytest.mark.parametrize("gap", [18.0, 25.0, 30.0, 40.0])
def test_bf16_entropy_of_a_nearly_one_hot_row_keeps_its_digits(gap):
    """The fast route sums in float32, which would round 1 + eps to 1 here: rows with Z' < 2 are
    summed again in float64, so H ~ eps (1 + gap) keeps 1e-6 relative."""
    K = 1000
    logits = torch.zeros(2, K, dtype=torch.bfloat16)
    logits[0, 7] = gap                                    # exact in bf16
    logits[1] = _logits((), K, 2.0, seed=6).bfloat16()   # an ordinary row beside it (Z' > 2)
    eps = (K - 1) * math.exp(-gap)
    p_top, p_other = 1 / (1 + eps), math.exp(-gap) / (1 + eps)
    exact = -(p_top * math.log(p_top) + (K - 1) * p_other * math.log(p_other))
    logp = logits[1].double().log_softmax(-1)
    h, log_z = softmax_rows.entropy_and_log_normalizer(logits)
    assert h[0].item() == pytest.approx(exact, rel=1e-6)
    assert h[1].item() == pytest.approx(-(logp.exp() * logp).sum().item(), rel=1e-6)
    torch.testing.assert_close(log_z, logits.double().logsumexp(-1), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_bf16_statistics_match_float64_brute_force(scale):
    """Every statistic on the fast route against float64 formulas of the same bf16 values,
    rows with -inf entries included."""
    K = 5000
    logits = _logits((4, 3), K, scale, seed=7).bfloat16()
    logits[0, 1, :K // 2] = float("-inf")
    ref = logits.double()
    logp = ref.log_softmax(-1)
    brute = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)
    h, log_z = softmax_rows.entropy_and_log_normalizer(logits, chunk_bytes=1 << 16)
    torch.testing.assert_close(h, brute, rtol=2e-6, atol=1e-9)
    torch.testing.assert_close(log_z, ref.logsumexp(-1), rtol=1e-7, atol=1e-6)
    torch.testing.assert_close(log_normalizer(logits, 1 << 16), ref.logsumexp(-1),
                               rtol=1e-7, atol=1e-6)
    z = torch.randint(0, K, (4, 3), generator=torch.Generator().manual_seed(3))
    stats = row_stats(logits, z, chunk_bytes=1 << 16)
    torch.testing.assert_close(stats.log_z, ref.logsumexp(-1), rtol=1e-7, atol=1e-6)
