"""``attractor demo``: the README's main job, the sweep of ``configs/demo.toml`` with its report.
Running it again in the same directory resumes where it stopped."""

from __future__ import annotations

import argparse
import time


def run(args: argparse.Namespace) -> int:
    from attractor.lock import hold
    from attractor.report.registry import render_directory
    from attractor.sweep.demo import demo_config
    from attractor.sweep.runner import run_sweep

    cfg = demo_config(args.quick)
    args.out = args.out or ("attractor-demo-quick" if args.quick else "attractor-demo")
    start = time.perf_counter()
    print(f"attractor demo{' (quick)' if args.quick else ''}: {len(cfg.sizes)} training sizes "
          f"({', '.join(map(str, cfg.sizes))}) x {', '.join(cfg.models)} x seeds "
          f"{', '.join(map(str, cfg.seeds))}, {cfg.train.steps} steps each; results in "
          f"{args.out}/")
    with hold(args.out, "attractor demo"):
        run_sweep(cfg, args.out, progress=not args.no_progress)
        path = render_directory(args.out)
    print(f"done in {time.perf_counter() - start:.0f} s")
    print(f"report: {path}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.options import add_common

    p.add_argument("--out", default=None,
                   help="output directory, resumable (default attractor-demo[-quick])")
    p.add_argument("--quick", action="store_true",
                   help="a one-minute version (a check of the whole pipeline)")
    add_common(p, "no_progress")
    p.set_defaults(func=run)
