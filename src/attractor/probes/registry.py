"""Every probe, in one table: what ``attractor probe``, sweeps, reports and the analysis run.

An entry names the probe's config class (its settings, defaults and help), the function that
runs it on a loaded run, and how its saved JSON is shown (title, summary table, figures). The
command line, the sweep runner, the writer, the reports and the analysis all read this table;
a new probe is one new entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from attractor.probes import figures, tables
from attractor.probes.common import ProbeResult
from attractor.probes.entropy import EntropyConfig, run_entropy
from attractor.probes.experiments import DeterministicConfig, StochasticConfig
from attractor.probes.generate import GenerateConfig, run_generate
from attractor.probes.recovery import run_recovery


@dataclass(frozen=True)
class Probe:
    """One probe: its settings, how it runs and how its results are shown."""

    command: str                       # ``attractor probe COMMAND``
    config: type                       # frozen dataclass of its settings
    run: Callable[..., ProbeResult]    # (run, config, generator, progress) -> ProbeResult
    title: str
    tables: Callable[[dict], list[tuple[str, list[dict]]]]  # saved JSON -> (caption, rows)
    figures: Callable[[dict], list[tuple[str, bytes]]]   # saved JSON -> (caption, PNG)
    variant: str = ""                  # ``--experiment VARIANT`` among one command's probes


PROBES: dict[str, Probe] = {
    "recovery_deterministic": Probe(
        "recovery", DeterministicConfig, run_recovery,
        "Experiment 1: deterministic retrieval (Fig. 1)", tables.recovery, figures.recovery,
        variant="deterministic"),
    "recovery_stochastic": Probe(
        "recovery", StochasticConfig, run_recovery,
        "Experiment 2: stochastic retrieval (Figs. 2-3)", tables.recovery, figures.recovery,
        variant="stochastic"),
    "entropy": Probe(
        "entropy", EntropyConfig, run_entropy,
        "Conditional entropy of training vs held-out sequences (eq. 13)", tables.entropy,
        figures.entropy),
    "generate": Probe(
        "generate", GenerateConfig, run_generate,
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


def run_probe(name: str, run, config, generator: torch.Generator,
              progress: bool = True) -> ProbeResult:
    """Run probe ``name`` with ``config`` on a loaded run."""
    probe = PROBES[name]
    assert isinstance(config, probe.config), f"{name} takes a {probe.config.__name__}"
    return probe.run(run, config, generator, progress=progress)
