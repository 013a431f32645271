import pytest
import torch


@pytest.fixture
def gen():
    """A fresh seeded generator: every test's randomness goes through it."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def one_thread():
    """torch on one thread for the test (small tensors, where threads only add overhead)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    # Under pytest-xdist each worker gets one thread: two workers x two threads on a 2-core
    # machine spin against each other and run several times slower.
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
