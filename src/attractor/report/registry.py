"""Which renderer draws which kind of results directory.

Every experiment writes ``results.json`` with a ``"kind"`` field into its output directory; the
renderer registered for that kind builds ``report.html`` from the files in that directory alone.
Entries are ``"module:function"`` strings so that importing this table costs nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from attractor import artifacts
from attractor.errors import UserError, require

RENDERERS: dict[str, str] = {
    "sweep": "attractor.analysis.report:render_sweep_report",
    "am-capacity": "attractor.memories.binary.report:render_capacity_report",
    "am-generalization": "attractor.memories.binary.report:render_generalization_report",
    "dense-circle": "attractor.memories.dense.report:render_report",
    "dense-digits": "attractor.memories.dense.report:render_report",
    "probes": "attractor.probes.report:render_report",
}


def render_directory(directory: str | Path) -> Path:
    """Render ``directory/report.html`` with the renderer for its ``results.json`` kind.

    A training run's directory stands for its ``probes/`` folder.
    """
    directory = Path(directory)
    require(directory.is_dir(), f"{directory} is not a directory")
    if not any((directory / name).is_file() for name in ("results.json", "sweep.json")) \
            and (directory / "probes" / "results.json").is_file():
        directory = directory / "probes"       # a training run: report its probes
    index = directory / "probes" / "results.json"
    require(not (directory / "membership.json").is_file() or not index.parent.is_dir(),
            f"{index} is missing: the probes of {directory} were cut short; run attractor "
            "probe on it again")
    require(not (directory / "membership.json").is_file(),
            f"{directory} is a training run without probes yet; run attractor probe on it first")
    results = directory / "results.json"
    if not results.is_file():
        results = directory / "sweep.json"
    require(results.is_file(), f"{directory} has no results.json or sweep.json: nothing to report")
    kind = artifacts.results_kind(results)
    require(kind in RENDERERS, f"no report for results of kind {kind!r}")
    if kind == "sweep":                 # the files its report reads, checked first
        artifacts.sweep_file(directory)
        if (directory / "analysis" / "analysis.json").exists():
            artifacts.analysis_file(directory)
    module, func = RENDERERS[kind].split(":")
    try:
        return getattr(importlib.import_module(module), func)(directory)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        # Reports are rendered from files only: a file of the wrong shape is damaged data.
        raise UserError(f"cannot render {directory}: a results file there is damaged or from "
                        f"another version ({type(err).__name__}: {err})") from None
