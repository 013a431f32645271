"""``attractor am capacity|generalization``: load sweeps of the binary associative memory (§3.1)."""

from __future__ import annotations

import argparse

from attractor.errors import UserError

DIGITS_N = 64


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


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

    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    config = CapacityConfig(n=args.n or 400, models=models, **_shared(args))
    path = run_capacity(config, args.out, args.overwrite, args.workers)
    print(f"results: {path}\nreport: {path.parent / 'report.html'}")
    return 0


def run_generalization_command(args: argparse.Namespace) -> int:
    from attractor.memories.binary.generalization import GeneralizationConfig, run_generalization

    if args.data == "digits" and args.n not in (None, DIGITS_N):
        raise UserError(f"the 8x8 digits fix N = {DIGITS_N}; drop --n")
    n = args.n or (DIGITS_N if args.data == "digits" else 400)
    config = GeneralizationConfig(
        data=args.data,
        n=n,
        feature_ratio=args.feature_ratio,
        mixture_size=args.mixture_size,
        n_test=args.n_test,
        hebb=args.hebb,
        **_shared(args),
    )
    path = run_generalization(config, args.out, args.overwrite, args.workers)
    print(f"results: {path}\nreport: {path.parent / 'report.html'}")
    return 0


def _common(p: argparse.ArgumentParser, out: str) -> None:
    p.add_argument("--out", default=out, help="output directory (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--n", type=int, default=None, help="neurons N (default 400; 64 for digits)")
    p.add_argument("--alphas", type=_floats, default=None, help="loads P/N, comma-separated")
    p.add_argument("--seeds", type=int, default=3, help="seeds per load (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default %(default)s)")
    p.add_argument("--beta", type=float, default=0.1, help="PL inverse temperature")
    p.add_argument("--lr", type=float, default=100.0, help="PL learning rate")
    p.add_argument("--epochs", type=int, default=400, help="PL full-batch epochs")
    p.add_argument("--clip", type=float, default=20.0, help="PL gradient-norm clip")
    p.add_argument("--dynamics", default="sync", help="sync or async zero-temperature retrieval")
    p.add_argument("--max-steps", type=int, default=30, help="steps (sync) or sweeps (async)")
    p.add_argument("--trials", type=int, default=100, help="basin trials per flipped fraction")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes over (alpha, seed) points; results do not depend on it",
    )
    p.add_argument("--flip-step", type=float, default=0.025, help="flipped-fraction grid step")


def add_parser(sub) -> None:
    p = sub.add_parser("am", help="binary associative memory: capacity and generalization sweeps")
    am = p.add_subparsers(dest="am_command", metavar="SWEEP", parser_class=type(p))
    cap = am.add_parser(
        "capacity", help="basins of random patterns vs load: PL, Hebb, pseudo-inverse"
    )
    _common(cap, "am-capacity")
    cap.add_argument("--models", default="pl,hebb,pinv", help="subset of pl,hebb,pinv")
    cap.set_defaults(func=run_capacity_command)
    gen = am.add_parser("generalization", help="train vs unseen-test attractors vs load")
    _common(gen, "am-generalization")
    gen.add_argument("--data", default="sparse", help="sparse, dense (random features) or digits")
    gen.add_argument("--feature-ratio", type=float, default=0.05, help="alpha_D = D/N")
    gen.add_argument("--mixture-size", type=int, default=3, help="L features per sparse mixture")
    gen.add_argument("--n-test", type=int, default=300, help="unseen test patterns")
    gen.add_argument("--hebb", action="store_true", help="also measure the Hebbian memory")
    gen.set_defaults(func=run_generalization_command)
    # ``attractor am`` alone: show the two sweeps rather than the top-level help.
    p.set_defaults(func=lambda args: p.print_help() or 2)
