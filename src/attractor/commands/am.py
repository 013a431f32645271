"""``attractor am capacity|generalization``: load sweeps of the binary associative memory (§3.1).

Every option but --out, --overwrite, --no-progress and --workers comes from the sweep's config
(:class:`~attractor.memories.binary.capacity.CapacityConfig`,
:class:`~attractor.memories.binary.generalization.GeneralizationConfig`).
"""

from __future__ import annotations

import argparse

HELP = {"capacity": "basins of random patterns vs load: PL, Hebb, pseudo-inverse",
        "generalization": "train vs unseen-test attractors vs load"}


def config_from_args(args: argparse.Namespace):
    from attractor.options import resolve

    return resolve(args.config_class(), None, args.config_options.changes(args))


def run(args: argparse.Namespace) -> int:
    from attractor.report.registry import render_directory

    path = args.runner(config_from_args(args), args.out, args.overwrite, args.workers,
                       not args.no_progress)
    print(f"results: {path}\nreport: {render_directory(path.parent)}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.memories.binary.capacity import CapacityConfig, run_capacity
    from attractor.memories.binary.generalization import GeneralizationConfig, run_generalization
    from attractor.options import add_common, add_config_options, parser_for

    sweeps = p.add_subparsers(dest="sweep", metavar="SWEEP", parser_class=type(p))
    for name, config_class, runner in (("capacity", CapacityConfig, run_capacity),
                                       ("generalization", GeneralizationConfig,
                                        run_generalization)):
        q = sweeps.add_parser(name, help=HELP[name], description=HELP[name])
        q.add_argument("--out", default=f"am-{name}", help=f"output directory (default am-{name})")
        add_common(q, "overwrite", "no_progress")
        q.add_argument("--workers", type=parser_for(int), default=1, metavar="N",
                       help="processes over (alpha, seed) points; results do not depend on it "
                       "(default 1)")
        add_config_options(q, config_class())
        q.set_defaults(func=run, config_class=config_class, runner=runner)
    p.set_defaults(func=lambda args: p.error("choose a sweep: capacity or generalization"))
