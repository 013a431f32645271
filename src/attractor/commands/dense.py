"""``attractor dense circle|digits``: diffusion as a Dense Associative Memory (arXiv 2505.21777).

Every option but --out, --overwrite, --quick, --no-progress and --threads comes from the
experiment's config (:class:`~attractor.memories.dense.experiments.CircleConfig`,
:class:`~attractor.memories.dense.experiments.DigitsConfig`); with --quick they apply to the
seconds-long version of it.
"""

from __future__ import annotations

import argparse

HELP = {"circle": "points on the unit circle (2-d)", "digits": "the 8x8 digits (64-d)"}


def config_from_args(args: argparse.Namespace):
    from attractor.memories.dense.experiments import quick
    from attractor.options import resolve

    base = quick(args.config_class()) if args.quick else args.config_class()
    return resolve(base, None, args.config_options.changes(args))


def run(args: argparse.Namespace) -> int:
    import torch

    from attractor.errors import require
    from attractor.report.registry import render_directory

    require(args.threads >= 0, f"--threads must be >= 0; got {args.threads}")
    config = config_from_args(args)
    require(config.seed < 2**63, f"--seed must be below 2**63 (torch's seed range); got "
            f"{config.seed}")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.runner(config, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"report: {render_directory(args.out)}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.memories.dense import experiments as ex
    from attractor.options import add_common, add_config_options, parser_for

    experiments = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=type(p))
    for name, config_class, runner in (("circle", ex.CircleConfig, ex.run_circle),
                                       ("digits", ex.DigitsConfig, ex.run_digits)):
        q = experiments.add_parser(name, help=HELP[name], description=HELP[name])
        add_common(q, "out", "no_progress")
        q.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                       help="replace results already in --out")
        q.add_argument("--quick", action="store_true", help="a seconds-long smoke version")
        q.add_argument("--threads", type=parser_for(int), default=1, metavar="N",
                       help="torch threads (default 1: the small ops here gain nothing from more "
                       "and lose badly when other processes share the cores; 0 keeps torch's "
                       "choice)")
        add_config_options(q, config_class())
        q.set_defaults(func=run, config_class=config_class, runner=runner)
    p.set_defaults(func=lambda args: p.error("choose an experiment: circle or digits"))
