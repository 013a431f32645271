"""The README's main job: a CPU-sized sweep on the synthetic corpus (``configs/demo.toml``)."""

from __future__ import annotations

from attractor.config import from_dict, read_config_file
from attractor.sweep.config import SweepConfig


def demo_config(quick: bool = False) -> SweepConfig:
    """The demo's sweep, or its one-minute version (``configs/demo-quick.toml``)."""
    return from_dict(SweepConfig, read_config_file("demo-quick" if quick else "demo"))
