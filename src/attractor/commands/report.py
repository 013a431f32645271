"""``attractor report DIR``: render ``DIR/report.html`` from the files in ``DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def lock_target(directory: str) -> Path:
    """The directory whose lock covers the report of ``directory``: a run's probes/ folder is
    covered by its run's lock, since probes write into it."""
    path = Path(directory)
    if path.name == "probes" and (path.parent / "membership.json").is_file():
        return path.parent
    return path


def run(args: argparse.Namespace) -> int:
    from attractor.errors import require
    from attractor.lock import hold
    from attractor.report.registry import render_directory

    require(Path(args.directory).is_dir(), f"{args.directory} is not a directory")
    with hold(lock_target(args.directory), "attractor report"):
        print(f"report: {render_directory(args.directory)}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="a sweep, a run, or an experiment directory")
    p.set_defaults(func=run)
