"""Every probe, in one table: what ``attractor probe``, sweeps, reports and the analysis run.

An entry names the probe's config class (its settings, defaults and help), the three functions
that run it as independent work items (plan, compute, finish: :mod:`attractor.probes.items`),
and how its saved JSON is shown (title, summary table, figures). The command line, the sweep
runner, the writer, the reports and the analysis all read this table; a new probe is one new
entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attractor.probes import entropy, figures, generate, items, recovery, tables
from attractor.probes.common import ProbeResult
from attractor.probes.entropy import EntropyConfig
from attractor.probes.experiments import DeterministicConfig, StochasticConfig
from attractor.probes.generate import GenerateConfig


@dataclass(frozen=True)
class Probe:
    """One probe: its settings, how it runs and how its results are shown."""

    command: str                       # ``attractor probe COMMAND``
    config: type                       # frozen dataclass of its settings
    plan: Callable                     # (run, config, generator) -> plan (keys, chunk)
    compute: Callable                  # (run, config, plan, items, denoiser) -> records
    finish: Callable                   # (run, config, plan, records, rng, timing) -> result
    title: str
    tables: Callable[[dict], list[tuple[str, list[dict]]]]  # saved JSON -> (caption, rows)
    figures: Callable[[dict], list[tuple[str, bytes]]]   # saved JSON -> (caption, PNG)
    variant: str = ""                  # ``--experiment VARIANT`` among one command's probes


STAGES = {m.__name__.rsplit(".", 1)[-1]: (m.plan, m.compute, m.finish)
          for m in (recovery, entropy, generate)}

PROBES: dict[str, Probe] = {
    "recovery_deterministic": Probe(
        "recovery", DeterministicConfig, *STAGES["recovery"],
        "Experiment 1: deterministic retrieval (Fig. 1)", tables.recovery, figures.recovery,
        variant="deterministic"),
    "recovery_stochastic": Probe(
        "recovery", StochasticConfig, *STAGES["recovery"],
        "Experiment 2: stochastic retrieval (Figs. 2-3)", tables.recovery, figures.recovery,
        variant="stochastic"),
    "entropy": Probe(
        "entropy", EntropyConfig, *STAGES["entropy"],
        "Conditional entropy of training vs held-out sequences (eq. 13)", tables.entropy,
        figures.entropy),
    "generate": Probe(
        "generate", GenerateConfig, *STAGES["generate"],
        "Experiment 3: generation, conditional entropy and copies (Figs. 4-5)", tables.generate,
        figures.generate),
}


def default_configs() -> dict[str, object]:
    """Every probe's default settings, by name (what a sweep runs unless told otherwise)."""
    return {name: probe.config() for name, probe in PROBES.items()}


def config_class(name: str) -> type | None:
    """The config class of the probe ``name``, None if there is no such probe."""
    probe = PROBES.get(name)
    return None if probe is None else probe.config


def commands() -> dict[str, dict[str, str]]:
    """``attractor probe`` subcommands: command -> {variant: probe name}."""
    out: dict[str, dict[str, str]] = {}
    for name, probe in PROBES.items():
        out.setdefault(probe.command, {})[probe.variant] = name
    return out


def run_probe(name: str, run, config, generator: torch.Generator, progress: bool = True,
              store: items.Store | None = None, world: items.World = items.World()
              ) -> ProbeResult | None:
    """Run probe ``name`` with ``config`` on a loaded run: in memory, or keeping its finished
    items in ``store`` (resumable; required when ``world`` has several processes). Returns the
    result on rank 0, None on the other ranks."""
    probe = PROBES[name]
    assert isinstance(config, probe.config), f"{name} takes a {probe.config.__name__}"
    assert store is not None or world.size == 1, "a distributed probe needs a store"
    return items.execute(name, probe, run, config, generator, progress, store, world)
