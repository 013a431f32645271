"""Contract tests of the reverse process (eq. 2) with synthetic denoisers."""

import math

import pytest
import torch

from attractor.errors import UserError
from attractor.probes.recovery import changed_positions, token_recovery
from attractor.sampler import (
    SamplerConfig,
    generate,
    reverse_process,
    time_grid,
)
from attractor.schedule import LogLinear, sigma_from_alpha

SCHEDULE = LogLinear()
VOCAB = 4


def oracle(x0, scale=100.0):
    """A denoiser that knows the answer: logits = scale * one_hot(x0), whatever z_t is."""
    return lambda zt, sigma: scale * torch.nn.functional.one_hot(x0, VOCAB).float()


def uniform(zt, sigma):
    """x_theta = 1/K everywhere."""
    return torch.zeros(*zt.shape, VOCAB)


def test_time_grid_rows_run_from_their_own_start():
    grid = time_grid(torch.tensor([1.0, 0.25]), steps=4, t_min=1e-5)
    assert grid.shape == (2, 5) and grid.dtype == torch.float64
    torch.testing.assert_close(grid[:, 0], torch.tensor([1.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(grid[:, -1], torch.full((2,), 1e-5, dtype=torch.float64))
    assert bool((grid[:, 1:] < grid[:, :-1]).all())
    torch.testing.assert_close(grid[1], torch.linspace(0.25, 1e-5, 5, dtype=torch.float64))


@pytest.mark.parametrize("dynamics", ["ancestral", "posterior-argmax"])
@pytest.mark.parametrize("final", ["ancestral", "greedy", "none"])
def test_shapes_dtype_and_determinism(dynamics, final):
    x0 = torch.randint(0, VOCAB, (6, 9), generator=torch.Generator().manual_seed(0))
    cfg = SamplerConfig(steps=5, dynamics=dynamics, final=final)

    def noisy(zt, sigma):  # depends on zt and sigma so that the draws matter
        return torch.nn.functional.one_hot(zt, VOCAB).float() * sigma[:, None, None] + 0.3

    t0 = torch.tensor([0.1, 0.2, 0.3, 0.5, 0.9, 1.0])
    outs = [reverse_process(noisy, x0, t0, SCHEDULE, torch.Generator().manual_seed(s), cfg)
            for s in (7, 7, 8)]
    assert outs[0].shape == x0.shape and outs[0].dtype == torch.int64
    assert bool(((outs[0] >= 0) & (outs[0] < VOCAB)).all())
    assert torch.equal(outs[0], outs[1])
    if dynamics == "ancestral":
        assert not torch.equal(outs[0], outs[2])


def test_each_row_follows_its_own_time_grid():
    seen = []

    def recording(zt, sigma):
        seen.append(sigma.clone())
        return torch.zeros(*zt.shape, VOCAB)

    t0 = torch.tensor([0.5, 0.05, 1.0])
    cfg = SamplerConfig(steps=3, final="ancestral")
    reverse_process(recording, torch.zeros(3, 2, dtype=torch.long), t0, SCHEDULE,
                    torch.Generator().manual_seed(0), cfg)
    assert len(seen) == cfg.steps + 1                  # one call per step plus the final step
    for b in range(3):
        times = torch.linspace(float(t0[b]), cfg.t_min, cfg.steps + 1, dtype=torch.float64)
        expected = sigma_from_alpha(SCHEDULE.alpha(times)).float()
        torch.testing.assert_close(torch.stack([s[b] for s in seen]), expected)


@pytest.mark.parametrize("dynamics", ["ancestral", "posterior-argmax"])
@pytest.mark.parametrize("final", ["ancestral", "greedy"])
def test_oracle_denoiser_recovers_everything(dynamics, final, gen):
    x0 = torch.randint(0, VOCAB, (16, 12), generator=gen)
    zt = (x0 + torch.randint(1, VOCAB, x0.shape, generator=gen)) % VOCAB   # every position wrong
    cfg = SamplerConfig(steps=10, dynamics=dynamics, final=final)
    x_hat = reverse_process(oracle(x0), zt, 0.5, SCHEDULE, gen, cfg)
    changed = changed_positions(x0, zt, torch.ones_like(x0, dtype=torch.bool))
    assert bool((token_recovery(x0, x_hat, changed) == 1).all())


def test_posterior_argmax_is_sticky_on_fine_grids(gen):
    # With a_s^2 <= a_t at every step the posterior argmax is the current token (module doc):
    # a grid from 0.5 to 0.25 never halves t, so even the oracle cannot move a token.
    x0 = torch.randint(0, VOCAB, (4, 8), generator=gen)
    zt = (x0 + 1) % VOCAB
    cfg = SamplerConfig(steps=10, t_min=0.25, dynamics="posterior-argmax", final="none")
    assert torch.equal(reverse_process(oracle(x0), zt, 0.5, SCHEDULE, gen, cfg), zt)


@pytest.mark.parametrize("final", ["ancestral", "none"])
def test_uniform_denoiser_recovers_at_chance(final, gen):
    # x_theta uniform makes p(z_s | z_t) = a_{t|s} delta_{z_t} + (1 - a_{t|s}) / K: a token survives
    # all steps with probability prod a_{t|s} = a_{t0} / a_end and is otherwise uniform, so a
    # changed position returns to x0 with probability (1 - a_{t0} / a_end) / K.
    t0, cfg = 0.5, SamplerConfig(steps=20, final=final)
    x0 = torch.randint(0, VOCAB, (128, 32), generator=gen)
    zt = (x0 + 1) % VOCAB
    x_hat = reverse_process(uniform, zt, t0, SCHEDULE, gen, cfg)
    a_end = 1.0 if final == "ancestral" else float(SCHEDULE.alpha(torch.tensor(cfg.t_min)))
    chance = (1 - float(SCHEDULE.alpha(torch.tensor(t0))) / a_end) / VOCAB
    rate = float((x_hat == x0).double().mean())
    se = math.sqrt(chance * (1 - chance) / x0.numel())
    assert abs(rate - chance) < 4 * se, (rate, chance)


def test_uniform_denoiser_under_posterior_argmax_never_moves(gen):
    x0 = torch.randint(0, VOCAB, (8, 8), generator=gen)
    zt = (x0 + 1) % VOCAB
    cfg = SamplerConfig(steps=5, dynamics="posterior-argmax", final="ancestral")
    assert torch.equal(reverse_process(uniform, zt, 0.5, SCHEDULE, gen, cfg), zt)


def test_generate_from_the_prior(gen):
    out = generate(uniform, 5, 7, VOCAB, SCHEDULE, gen, SamplerConfig(steps=3))
    assert out.shape == (5, 7) and out.dtype == torch.int64
    assert bool(((out >= 0) & (out < VOCAB)).all())


@pytest.mark.parametrize("bad", [{"steps": 0}, {"t_min": 0.0}, {"dynamics": "x"},
                                 {"final": "x"}])
def test_bad_sampler_settings_are_user_errors(bad):
    with pytest.raises(UserError):
        SamplerConfig(**bad)


@pytest.mark.parametrize("dynamics", ["ancestral", "posterior-argmax"])
def test_positions_that_are_not_free_never_change(dynamics, gen):
    from attractor.retrieval import annealed, fixed_point

    x0 = torch.randint(0, VOCAB, (6, 10), generator=gen)
    free = torch.rand(6, 10, generator=gen) < 0.5

    def noisy(zt, sigma):            # any logits: the frozen positions must keep their ids
        return torch.randn(*zt.shape, VOCAB, generator=gen)

    cfg = SamplerConfig(steps=4, dynamics=dynamics)
    for out in (reverse_process(noisy, x0, 0.6, SCHEDULE, gen, cfg, free),
                annealed(noisy, x0, torch.full((6,), 0.6), SCHEDULE, 4, free=free),
                fixed_point(noisy, x0, torch.full((6,), 0.6), SCHEDULE, 5, free=free).z):
        assert torch.equal(out[~free], x0[~free])
        assert not torch.equal(out[free], x0[free])


@pytest.mark.parametrize("greedy", [False, True])
@pytest.mark.parametrize("final", [False, True])
def test_a_step_on_some_positions_is_the_step_on_all_restricted_to_them(greedy, final, gen):
    """posterior_step given the (n, K) logits of the positions ``at`` alone: those positions
    get what the step on every position gives them (every position draws its numbers either
    way), the others keep z_t."""
    from attractor.sampler import posterior_step
    from attractor.streams import RowStreams

    B, L, K = 5, 7, 6
    logits = torch.randn(B, L, K, generator=gen) * 2
    zt = torch.randint(0, K, (B, L), generator=gen)
    at = torch.rand(B, L, generator=gen) < 0.6
    a_t = torch.rand(B, generator=gen, dtype=torch.float64) * 0.5
    a_s = 1.0 if final else a_t + 0.3
    keys = range(100, 100 + B)
    whole = posterior_step(logits, zt, a_t, a_s, RowStreams(keys), greedy)
    part = posterior_step(logits[at], zt, a_t, a_s, RowStreams(keys), greedy, at)
    assert torch.equal(part[at], whole[at]) and torch.equal(part[~at], zt[~at])
    assert not torch.equal(whole[~at], zt[~at])          # the step did move some of the others


@pytest.mark.parametrize("dynamics", ["ancestral", "posterior-argmax"])
@pytest.mark.parametrize("final", ["ancestral", "greedy"])
def test_the_process_on_free_positions_is_the_whole_process_with_the_rest_held(
        dynamics, final, gen):
    """reverse_process(free=...) asks for the free positions' logits alone and gives what
    stepping every position and putting the others back after each step gives."""
    from attractor.sampler import posterior_step
    from attractor.softmax_rows import argmax
    from attractor.streams import RowStreams

    B, L = 4, 9
    table = torch.randn(VOCAB, VOCAB, generator=gen) * 2
    where = torch.randn(L, VOCAB, generator=gen)

    def whole(z, sigma):
        return table[z] + where + sigma[:, None, None]

    asked = []

    def rows_only(z, sigma, rows):
        asked.append(rows)
        return whole(z, sigma)[rows]

    rows_only.takes_rows = True
    zt = torch.randint(0, VOCAB, (B, L), generator=gen)
    free = torch.rand(B, L, generator=gen) < 0.5
    t0 = torch.tensor([0.9, 0.5, 0.3, 0.7], dtype=torch.float64)
    cfg = SamplerConfig(steps=6, dynamics=dynamics, final=final)
    keys = range(7, 7 + B)
    out = reverse_process(rows_only, zt, t0, SCHEDULE, RowStreams(keys), cfg, free)

    grid, rows, z = time_grid(t0, cfg.steps, cfg.t_min), RowStreams(keys), zt  # held by hand
    greedy = dynamics == "posterior-argmax"
    for i in range(cfg.steps):
        t, s = grid[:, i], grid[:, i + 1]
        logits = whole(z, sigma_from_alpha(SCHEDULE.alpha(t)).float())
        step = posterior_step(logits, z, SCHEDULE.alpha(t), SCHEDULE.alpha(s), rows, greedy)
        z = torch.where(free, step, zt)
    logits = whole(z, sigma_from_alpha(SCHEDULE.alpha(grid[:, -1])).float())
    last = argmax(logits) if final == "greedy" else \
        posterior_step(logits, z, SCHEDULE.alpha(grid[:, -1]), 1.0, rows, greedy)
    assert torch.equal(out, torch.where(free, last, zt))
    assert len(asked) == cfg.steps + 1 and all(torch.equal(a, free) for a in asked)
