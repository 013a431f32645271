"""``attractor train --out RUN_DIR``: train one UDDM on a fraction of a corpus."""

from __future__ import annotations

import argparse
import sys

from attractor.options import add_common, add_config_options, resolve

DESCRIPTION = ("Train one UDDM into RUN_DIR. Settings not given take their defaults (a CPU-sized "
               "recipe), those of --config, or with --resume the run's saved ones; an option "
               "given with --resume must equal the saved value.")


def config_from_args(args: argparse.Namespace):
    from attractor.config import differences, override
    from attractor.errors import UserError
    from attractor.train.config import TrainConfig, read_run_config

    changes = args.config_options.changes(args)
    if not args.resume:
        return resolve(TrainConfig(), args.config, changes)
    if args.config:
        raise UserError("--resume continues with the run's saved settings; drop --config")
    saved, _ = read_run_config(args.out)
    diff = differences(override(saved, changes), saved)
    if diff:
        raise UserError(f"--resume with options that differ from the saved config: "
                        f"{'; '.join(diff[:4])}")
    return saved


def run(args: argparse.Namespace) -> int:
    from attractor.lock import output_dir
    from attractor.train.trainer import train

    output_dir(args.out)                # '' would mean the current directory
    summary = train(config_from_args(args), args.out, resume=args.resume,
                    progress=not args.no_progress, cache_dir=args.cache_dir)
    if not summary:                     # a data-parallel rank other than the first
        return 0
    train_nelbo, test_nelbo = summary.get("train_nelbo"), summary.get("test_nelbo")
    if train_nelbo is None or test_nelbo is None:       # written as null: the loss diverged
        print(f"run: {args.out}  the loss is not finite (diverged); try a smaller --lr",
              file=sys.stderr)
        return 1
    print(f"run: {args.out}  train NELBO {train_nelbo:.4f}  test NELBO {test_nelbo:.4f} "
          "nats/token")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.options import DOTTED_NOTE
    from attractor.train.config import TrainConfig

    p.description, p.epilog = DESCRIPTION, DOTTED_NOTE
    add_common(p, "out", "config", "no_progress")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--cache-dir", default=None, help="cache of tokenised corpora (default none)")
    add_config_options(p, TrainConfig())
    p.set_defaults(func=run)
