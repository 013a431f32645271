"""``attractor sweep --out SWEEP_DIR``: train and probe a grid of models x sizes x seeds.

Restarting the same command resumes: finished runs and probes are skipped. ``--plan`` prints
the runs as JSON so that each can be dispatched as its own job (``--only NAME``).
"""

from __future__ import annotations

import argparse
import json

from attractor.options import add_common, add_config_options, resolve

EXCLUDED = ("train.model_name", "train.model", "train.fraction", "train.num_train", "train.seed",
            "train.family")


def config_from_args(args: argparse.Namespace):
    from attractor.errors import UserError
    from attractor.sweep.config import SweepConfig
    from attractor.sweep.runner import load_sweep_config

    if not args.resume_config:
        return resolve(SweepConfig(), args.config, args.config_options.changes(args))
    given = [*args.config_options.given(args), *(["--config"] if args.config else [])]
    if given:
        raise UserError(f"--resume-config takes every setting from {args.out}/sweep.json; "
                        f"drop {', '.join(given)}")
    return load_sweep_config(args.out)


def _only(args: argparse.Namespace, cfg) -> list[str] | None:
    from attractor.errors import require
    from attractor.sweep.plan import plan_runs

    require(args.only is None or args.only_index is None, "give --only or --only-index, not both")
    require(args.only is None or len(set(args.only)) == len(args.only),
            f"--only repeats a run: {','.join(args.only or ())}")
    require(not args.plan or (args.only is None and args.only_index is None),
            "--plan lists every run of the sweep; drop --only / --only-index")
    if args.only_index is None:
        return args.only
    names = [r.name for r in plan_runs(cfg)]
    require(0 <= args.only_index < len(names),
            f"--only-index {args.only_index} is outside the plan's 0..{len(names) - 1}")
    return [names[args.only_index]]


def run(args: argparse.Namespace) -> int:
    from attractor.lock import hold, output_dir

    # Sweeps of single runs (array jobs) share the directory; a whole sweep holds it alone.
    shared = args.only is not None or args.only_index is not None
    with hold(output_dir(args.out), "attractor sweep", shared=shared and not args.plan):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from attractor.report.registry import render_directory
    from attractor.sweep.plan import plan_json
    from attractor.sweep.runner import prepare_sweep, run_sweep

    cfg = config_from_args(args)
    if args.plan:                   # the jobs it lists read their settings from sweep.json
        cfg, _ = prepare_sweep(args.out, cfg)
        print(json.dumps(plan_json(cfg, args.out), indent=2))
        return 0
    if args.only_index is not None:
        cfg, _ = prepare_sweep(args.out, cfg)      # the plan's names need the sizes
    only = _only(args, cfg)
    run_sweep(cfg, args.out, only=only, progress=not args.no_progress)
    if not only:
        print(f"report: {render_directory(args.out)}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.options import DOTTED_NOTE, parser_for
    from attractor.sweep.config import SweepConfig

    p.epilog = DOTTED_NOTE
    add_common(p, "out", "config", "no_progress")
    p.add_argument("--only", type=parser_for(tuple[str, ...]), default=None,
                   help="run only these runs, comma-separated (names from --plan)")
    p.add_argument("--only-index", type=parser_for(int), default=None,
                   help="run only the plan's run with this index (e.g. a Slurm array task id)")
    p.add_argument("--plan", action="store_true",
                   help="check the sweep, write sweep.json, print the runs as JSON and exit")
    p.add_argument("--resume-config", action="store_true",
                   help="take every setting from SWEEP_DIR/sweep.json")
    add_config_options(p, SweepConfig(), exclude=EXCLUDED)
    p.set_defaults(func=run)
