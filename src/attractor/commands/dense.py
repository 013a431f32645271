"""``attractor dense circle|digits``: diffusion as a Dense Associative Memory (arXiv 2505.21777)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from attractor.commands.args import ints, nonnegative_int, positive_float, positive_int
from attractor.errors import UserError


def _ks(text: str) -> tuple[int, ...]:
    ks = ints(text)
    if min(ks) < 2:
        raise argparse.ArgumentTypeError("every training size K must be at least 2")
    return ks


def _config(args: argparse.Namespace):
    from attractor.memories.dense import experiments as ex

    cfg = ex.CircleConfig() if args.dataset == "circle" else ex.DigitsConfig()
    if args.quick:
        cfg = ex.quick(cfg)
    updates = {k: v for k, v in (("learned_ks", args.ks), ("exact_ks", args.exact_ks),
                                 ("sigma", args.sigma), ("seed", args.seed)) if v is not None}
    gen = cfg.generation
    if args.iterations is not None:
        gen = replace(gen, model=replace(gen.model, iterations=args.iterations))
    if args.samples is not None:
        gen = replace(gen, samples=args.samples)
    if args.sampler is not None:
        gen = replace(gen, method=args.sampler)
    th = replace(gen.thresholds, **{k: v for k, v in (("memorised", args.memorised),
                                                      ("spurious", args.spurious))
                                    if v is not None})
    return replace(cfg, generation=replace(gen, thresholds=th), **updates)


def run(args: argparse.Namespace) -> int:
    import torch

    from attractor.memories.dense import experiments as ex

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = _config(args)
    except ValueError as err:  # a frozen config rejected a value
        raise UserError(str(err)) from err
    runner = ex.run_circle if args.dataset == "circle" else ex.run_digits
    print(f"report: {runner(cfg, args.out, overwrite=args.overwrite, progress=not args.no_progress)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("dense", help="continuous diffusion as a Dense Associative Memory")
    p.add_argument("dataset", choices=("circle", "digits"), help="training data")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", "--force", dest="overwrite", action="store_true",
                   help="replace results already in --out")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke version")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # The defaults quoted here are checked against the configs by the tests.
    p.add_argument("--ks", type=_ks, help="training sizes of the learned scores (default circle "
                   "2,4,8,16,32,64,256,1024; digits 10,30,100,300,1000,1497)")
    p.add_argument("--exact-ks", type=_ks, help="training sizes of the exact-energy sweep (default "
                   "circle 2,4,8,16,32,64,128,512; digits 10,30,100,300,1000,1497)")
    p.add_argument("--sigma", type=positive_float,
                   help="noise level of the exact energy (default circle 0.15; digits 1.5)")
    p.add_argument("--iterations", type=positive_int,
                   help="score-matching iterations per model (default 5000)")
    p.add_argument("--samples", type=positive_int,
                   help="generated samples per model (default circle 1000; digits 500)")
    p.add_argument("--sampler", choices=("sde", "ode"),
                   help="Euler-Maruyama or probability flow (default sde)")
    p.add_argument("--memorised", type=positive_float,
                   help="delta_m in units of the train NN spacing (default 1/3)")
    p.add_argument("--spurious", type=positive_float,
                   help="delta_s in units of the train NN spacing (default 1/3)")
    p.add_argument("--seed", type=nonnegative_int,
                   help="seed of the training sets and of all sampling (default 0)")
    p.add_argument("--threads", type=nonnegative_int, default=1,
                   help="torch threads (default 1: the small ops here gain nothing from more and "
                        "lose badly when other processes share the cores; 0 keeps torch's choice)")
    p.set_defaults(func=run)
