"""``attractor am capacity|generalization``: load sweeps of the binary associative memory (§3.1)."""

from __future__ import annotations

import argparse

from attractor.commands.args import floats, names, nonnegative_int, positive_float, positive_int
from attractor.errors import UserError

DIGITS_N = 64


def _shared(args: argparse.Namespace) -> dict:
    from attractor.memories.binary.sweep import RetrievalConfig, TrainingConfig

    training = TrainingConfig(
        beta=args.beta, learning_rate=args.lr, n_epochs=args.epochs, clip_norm=args.clip
    )
    retrieval = RetrievalConfig(
        rule=args.dynamics, max_steps=args.max_steps, n_trials=args.trials, flip_step=args.flip_step
    )
    extra = {"alphas": args.alphas} if args.alphas is not None else {}
    return dict(seed=args.seed, n_seeds=args.seeds, training=training, retrieval=retrieval, **extra)


def run_capacity_command(args: argparse.Namespace) -> int:
    from attractor.memories.binary.capacity import CapacityConfig, run_capacity

    n = 400 if args.n is None else args.n
    config = CapacityConfig(n=n, models=args.models, **_shared(args))
    path = run_capacity(config, args.out, args.overwrite, args.workers, not args.no_progress)
    print(f"results: {path}\nreport: {path.parent / 'report.html'}")
    return 0


def run_generalization_command(args: argparse.Namespace) -> int:
    from attractor.memories.binary.generalization import GeneralizationConfig, run_generalization

    if args.data == "digits" and args.n not in (None, DIGITS_N):
        raise UserError(f"the 8x8 digits fix N = {DIGITS_N}; drop --n")
    n = args.n if args.n is not None else (DIGITS_N if args.data == "digits" else 400)
    config = GeneralizationConfig(
        data=args.data,
        n=n,
        feature_ratio=args.feature_ratio,
        mixture_size=args.mixture_size,
        n_test=args.n_test,
        hebb=args.hebb,
        **_shared(args),
    )
    path = run_generalization(config, args.out, args.overwrite, args.workers,
                              not args.no_progress)
    print(f"results: {path}\nreport: {path.parent / 'report.html'}")
    return 0


def _common(p: argparse.ArgumentParser, out: str, alphas: str, n_help: str) -> None:
    p.add_argument("--out", default=out, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--n", type=int, default=None, help=n_help)
    p.add_argument("--alphas", type=floats, default=None,
                   help=f"loads P/N, comma-separated (default {alphas})")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per load")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="first seed")
    p.add_argument("--beta", type=positive_float, default=0.1, help="PL inverse temperature")
    p.add_argument("--lr", type=positive_float, default=100.0, help="PL learning rate")
    p.add_argument("--epochs", type=positive_int, default=400, help="PL full-batch epochs")
    p.add_argument("--clip", type=positive_float, default=20.0, help="PL gradient-norm clip")
    p.add_argument("--dynamics", choices=("sync", "async"), default="sync",
                   help="zero-temperature retrieval, all sites at once or one at a time")
    p.add_argument("--max-steps", type=positive_int, default=30, help="steps (sync) or sweeps (async)")
    p.add_argument("--trials", type=positive_int, default=100, help="basin trials per flipped fraction")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="processes over (alpha, seed) points; results do not depend on it")
    p.add_argument("--flip-step", type=positive_float, default=0.025, help="flipped-fraction grid step")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _defaults(sweep: str) -> str:
    """The default load grid of ``sweep``, as --help shows it."""
    from attractor.memories.binary.capacity import CapacityConfig
    from attractor.memories.binary.generalization import GeneralizationConfig

    config = CapacityConfig() if sweep == "capacity" else GeneralizationConfig()
    return ",".join(f"{a:g}" for a in config.alphas)


def add_parser(sub) -> None:
    p = sub.add_parser("am", help="binary associative memory: capacity and generalization sweeps")
    am = p.add_subparsers(dest="am_command", metavar="SWEEP", parser_class=type(p))
    cap = am.add_parser(
        "capacity", help="basins of random patterns vs load: PL, Hebb, pseudo-inverse"
    )
    _common(cap, "am-capacity", _defaults("capacity"), "neurons N (default 400)")
    cap.add_argument("--models", type=names, default=("pl", "hebb", "pinv"),
                     help="subset of pl,hebb,pinv")
    cap.set_defaults(func=run_capacity_command)
    gen = am.add_parser("generalization", help="train vs unseen-test attractors vs load")
    _common(gen, "am-generalization", _defaults("generalization"),
            "neurons N (default 400; 64 for digits)")
    gen.add_argument("--data", choices=("sparse", "dense", "digits"), default="sparse",
                     help="sparse or dense random-feature mixtures, or the 8x8 digits")
    gen.add_argument("--feature-ratio", type=positive_float, default=0.05, help="alpha_D = D/N")
    gen.add_argument("--mixture-size", type=positive_int, default=3, help="L features per sparse mixture")
    gen.add_argument("--n-test", type=positive_int, default=300, help="unseen test patterns")
    gen.add_argument("--hebb", action="store_true", help="also measure the Hebbian memory")
    gen.set_defaults(func=run_generalization_command)
    # ``attractor am`` alone: name the two sweeps.
    p.set_defaults(func=lambda args: p.error("choose a sweep: capacity or generalization"))
