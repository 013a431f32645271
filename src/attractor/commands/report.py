"""``attractor report DIR``: render ``DIR/report.html`` from the files in ``DIR``."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from attractor.report.registry import render_directory

    print(f"report: {render_directory(args.directory)}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="a sweep, a run, or an experiment directory")
    p.set_defaults(func=run)
