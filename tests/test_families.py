"""The family operations of the probes skip the K-wide work of positions whose values are
discarded (pads, the autoregressive first token): the same numbers at the others, 0 there."""

import torch

from attractor import families, softmax_rows, streams
from attractor.families import Autoregressive, Uniform
from attractor.loss_fused import fused_nelbo_per_token
from attractor.schedule import LogLinear, sigma_from_alpha

K, B, L = 11, 3, 6


def close(a, b):
    """Equal up to the order of float32 sums (the bf16 fast route of softmax_rows)."""
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def planted(gen):
    """A denoiser whose logits depend on the token, its position and sigma (bf16, as under
    autocast), so that every row differs."""
    table = torch.randn(K, K, generator=gen) * 3
    where = torch.randn(L, K, generator=gen)

    def denoiser(z, sigma):
        return (table[z] + where[: z.shape[1]] + sigma[:, None, None]).bfloat16()
    return denoiser


def batch(gen):
    x = torch.randint(0, K, (B, L), generator=gen)
    real = torch.arange(L)[None] < torch.tensor([[L], [3], [1]])            # padded rows
    return x, real


def test_uniform_clean_scores_at_real_tokens_only(gen):
    denoiser, (x, real) = planted(gen), batch(gen)
    ops = Uniform(LogLinear(), K)
    h, log_p = ops.clean_scores(denoiser, x, real, 1e-5, 64)
    tt = torch.full((B,), 1e-5, dtype=torch.float64)
    sigma = families._sigma(ops.schedule, tt)
    logits = denoiser(x, sigma)
    h_all, log_z = softmax_rows.entropy_and_log_normalizer(logits)
    log_p_all = logits.gather(-1, x[..., None])[..., 0].double() - log_z
    close(h[real], h_all[real])
    close(log_p[real], log_p_all[real])
    assert bool((h[~real] == 0).all()) and bool((log_p[~real] == 0).all())


def test_autoregressive_clean_scores_are_next_token_scores_of_real_tokens(gen):
    denoiser, (x, real) = planted(gen), batch(gen)
    h, log_p = Autoregressive(LogLinear(), K, 0).clean_scores(denoiser, x, real, 0.0, 64)
    logits = denoiser(x, torch.zeros(B))
    for b in range(B):
        for pos in range(L):
            if pos == 0 or not real[b, pos]:
                assert h[b, pos] == 0 and log_p[b, pos] == 0
                continue
            row = logits[b, pos - 1]                                      # predicts pos
            ref_h, ref_z = softmax_rows.entropy_and_log_normalizer(row[None])
            # one row alone may be summed in another order (float32 sums of bf16 rows)
            close(h[b, pos], ref_h[0])
            close(log_p[b, pos], row[x[b, pos]].double() - ref_z[0])


def test_uniform_nelbo_sums_the_real_tokens_of_the_full_loss(gen, monkeypatch):
    denoiser, (x, real) = planted(gen), batch(gen)
    calls = []

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return fused_nelbo_per_token(*args, **kwargs)

    monkeypatch.setattr(families, "fused_nelbo_per_token", spy)
    keys = [streams.item_key(7, streams.digest(x[b]), 0) for b in range(B)]
    got = Uniform(LogLinear(), K).nelbo(denoiser, x, real, 4, streams.RowStreams(keys, x.device))
    ((args, kwargs),) = calls
    m_rep = real.repeat_interleave(4, 0)
    assert torch.equal(kwargs["rows"], m_rep)
    x_rep, zt, alpha, dalpha = args[1:]
    assert args[0].shape == (int(m_rep.sum()), K)                # the real rows' logits only
    logits = denoiser(zt, sigma_from_alpha(alpha).to(torch.float32))
    full = fused_nelbo_per_token(logits, x_rep, zt, alpha, dalpha).double()   # pads too
    close(got, (full * m_rep).sum(-1).view(B, 4).mean(-1))


def test_a_denoiser_that_takes_rows_is_asked_for_the_kept_ones(gen):
    """sampler.logits_at: a denoiser with ``takes_rows`` gets the positions to produce, and the
    family operations give the same numbers as from a denoiser called whole."""
    plain = planted(gen)
    asked = []

    def rows_only(z, sigma, rows):
        asked.append(rows)
        return plain(z, sigma)[rows]

    rows_only.takes_rows = True
    x, real = batch(gen)
    for ops in (Uniform(LogLinear(), K), Autoregressive(LogLinear(), K, 0)):
        for a, b in zip(ops.clean_scores(plain, x, real, 1e-5, 64),
                        ops.clean_scores(rows_only, x, real, 1e-5, 64), strict=True):
            assert torch.equal(a, b)
    assert torch.equal(asked[0], real) and int(asked[1].sum()) == int(real[:, 1:].sum())
    keys = [streams.item_key(3, streams.digest(x[b]), 0) for b in range(B)]
    nelbo = [Uniform(LogLinear(), K).nelbo(d, x, real, 2, streams.RowStreams(keys, x.device))
             for d in (plain, rows_only)]
    assert torch.equal(*nelbo) and torch.equal(asked[-1], real.repeat_interleave(2, 0))


def _cfg(**kw):
    from types import SimpleNamespace
    return SimpleNamespace(reverse_steps=3, max_iterations=4, **kw)


def test_retrieval_and_start_entropy_ask_only_for_the_positions_they_can_change(gen):
    """Every family's retrieval and start-time entropy ask a denoiser that takes rows for the
    positions they may change or report (never a pad; the autoregressive baseline for the one
    position it predicts), and give the same ids and entropies as from the denoiser called
    whole; the entropy is 0 at pads."""
    from attractor.families import Masked

    plain = planted(gen)
    x, real = batch(gen)
    x, real[0, -1] = x % (K - 1), False     # no mask id in clean data; a pad in every row
    t0 = torch.full((B,), 0.6, dtype=torch.float64)
    cases = [(Uniform(LogLinear(), K), k) for k in ("stochastic", "posterior-argmax",
                                                    "annealed", "fixed-point")]
    cases += [(Masked(LogLinear(), K, K - 1), k) for k in ("stochastic", "annealed")]
    cases += [(Autoregressive(LogLinear(), K, 0), k) for k in ("stochastic", "annealed")]
    for ops, kind in cases:
        zt = ops.forward(x, torch.full((B,), 0.6), gen, real)
        asked = []

        def rows_only(z, sigma, rows):
            asked.append(rows)
            return plain(z, sigma)[rows]

        rows_only.takes_rows = True
        keys = [streams.item_key(5, b) for b in range(B)]
        got = [ops.retrieve(kind, d, zt, t0, streams.RowStreams(keys), real, _cfg())[0]
               for d in (plain, rows_only)]
        assert torch.equal(*got), (ops.name, kind)
        assert asked, (ops.name, kind)
        for a in asked:             # the autoregressive baseline: one position per row a call
            if ops.name == "ar":
                assert bool((a.sum(-1) == 1).all()), kind
            elif ops.name == "uniform":   # exactly the real positions of the rows asked for
                assert all(any(torch.equal(r, q) for q in real) for r in a), kind
            else:
                assert not bool((a & ~real).any()), (ops.name, kind)
        asked.clear()
        h = [ops.start_entropy(d, zt, t0, real) for d in (plain, rows_only)]
        close(*h)
        assert bool((h[0][~real] == 0).all()) and not bool((asked[0] & ~real).any())
