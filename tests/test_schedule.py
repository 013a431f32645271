import math

import pytest
import torch

from attractor.errors import UserError
from attractor.schedule import Cosine, LogLinear, get_schedule, sigma_from_alpha


@pytest.mark.parametrize("schedule", [LogLinear(), Cosine()])
def test_boundaries_and_monotone(schedule):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a = schedule.alpha(t)
    assert a[0].item() == pytest.approx(1.0)
    assert a[-1].item() < 2e-3
    assert bool((a[1:] < a[:-1]).all())


@pytest.mark.parametrize("schedule", [LogLinear(eps=1e-3), Cosine(eps=1e-3), Cosine(eps=0.2)])
def test_dalpha_is_the_exact_derivative(schedule):
    t = torch.linspace(0.01, 0.99, 37, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(schedule.alpha(t).sum(), t)
    torch.testing.assert_close(schedule.dalpha(t.detach()), grad, rtol=1e-10, atol=1e-12)


def test_loglinear_closed_form():
    s = LogLinear(eps=1e-3)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(s.alpha(t), torch.tensor([1.0, 1 - 0.999 / 2, 1e-3],
                                                        dtype=torch.float64))
    assert sigma_from_alpha(s.alpha(t))[-1].item() == pytest.approx(-math.log(1e-3))


def test_unknown_schedule_is_a_user_error():
    with pytest.raises(UserError, match="unknown noise schedule"):
        get_schedule("linear")


@pytest.mark.parametrize("name", ["loglinear", "cosine"])
def test_time_of_alpha_inverts_alpha(name):
    from attractor.schedule import get_schedule

    schedule = get_schedule(name)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(schedule.time_of_alpha(schedule.alpha(t)), t, atol=1e-9, rtol=0)
