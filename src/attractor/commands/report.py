"""``attractor report DIR``: render ``DIR/report.html`` from the files in ``DIR``."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from attractor.report.registry import render_directory

    path = render_directory(args.directory)
    print(f"report: {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="render the HTML report of a results directory")
    p.add_argument("directory", help="a sweep or experiment directory")
    p.set_defaults(func=run)
