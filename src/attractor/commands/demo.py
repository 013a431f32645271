"""``attractor demo``: the README's main job."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    print("attractor demo: not available yet")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="a CPU-sized sweep on the synthetic corpus, with its report")
    p.add_argument("--out", default="attractor-demo", help="output directory")
    p.add_argument("--quick", action="store_true", help="a two-minute version")
    p.set_defaults(func=run)
