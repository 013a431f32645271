import torch
import pytest


@pytest.fixture
def gen():
    """A fresh seeded generator: every test's randomness goes through it."""
    return torch.Generator().manual_seed(1234)
