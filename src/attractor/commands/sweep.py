"""``attractor sweep --out SWEEP_DIR``: train and probe a grid of training sizes x models.

Restarting the same command resumes: finished runs and probes are skipped. ``--plan`` prints
the runs as JSON so that each can be dispatched as its own job (``--only NAME``).
"""

from __future__ import annotations

import argparse
import json

from attractor.commands.args import (
    finite_float,
    ints,
    names,
    nonnegative_int,
    positive_float,
    positive_int,
)

# The options that make up a sweep's config; --resume-config takes them all from sweep.json.
SETTINGS = ("models", "sizes", "steps", "batch_size", "lr", "warmup", "ema", "corpus", "tokenizer",
            "block_length", "mode", "corpus_size", "test_size", "synthetic_words", "seed",
            "loss_on_padding", "compile", "precision", "device", "probe_sequences",
            "reverse_steps", "num_samples", "generate_steps", "entropy_sequences", "bootstrap",
            "probe_precision")


_UNSET = object()


def config_from_args(args: argparse.Namespace):
    from dataclasses import replace

    from attractor.data import DataConfig
    from attractor.errors import UserError
    from attractor.sweep.config import ProbeSettings, SweepConfig, paper_spaced_sizes
    from attractor.sweep.runner import load_sweep_config

    given = [name for name in SETTINGS if getattr(args, name) is not _UNSET]
    if args.resume_config:
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            raise UserError(f"--resume-config takes every setting from {args.out}/sweep.json; "
                            f"drop {flags}")
        return load_sweep_config(args.out)
    args = argparse.Namespace(**{**vars(args), **{name: args.setting_defaults[name]
                                                  for name in SETTINGS if name not in given}})
    data = replace(DataConfig(), corpus=args.corpus, tokenizer=args.tokenizer,
                   block_length=args.block_length, corpus_size=args.corpus_size,
                   test_size=args.test_size, mode=args.mode,
                   synthetic_words=args.synthetic_words)
    sizes = args.sizes or paper_spaced_sizes(data.corpus_size - data.test_size
                                             if data.corpus == "synthetic" else 100000)
    probes = replace(ProbeSettings(), num_sequences=args.probe_sequences,
                     reverse_steps=args.reverse_steps, num_samples=args.num_samples,
                     generate_steps=args.generate_steps, entropy_sequences=args.entropy_sequences,
                     bootstrap=args.bootstrap, precision=args.probe_precision)
    return SweepConfig(data=data, models=args.models, sizes=tuple(sizes), steps=args.steps,
                       batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, ema=args.ema,
                       seed=args.seed, precision=args.precision,
                       loss_on_padding=args.loss_on_padding, compile=args.compile,
                       device=args.device, probes=probes)


def run(args: argparse.Namespace) -> int:
    from attractor.errors import UserError
    from attractor.report.registry import render_directory
    from attractor.sweep.plan import plan_json
    from attractor.sweep.runner import prepare_sweep, run_sweep

    if args.only is not None and len(set(args.only)) != len(args.only):
        raise UserError(f"--only repeats a run: {','.join(args.only)}")
    if args.only is not None and args.only_index is not None:
        raise UserError("give --only or --only-index, not both")
    if args.plan and (args.only is not None or args.only_index is not None):
        raise UserError("--plan lists every run of the sweep; drop --only / --only-index")
    cfg = config_from_args(args)
    cfg.validate()
    if args.plan:                   # the jobs it lists read their settings from sweep.json
        prepare_sweep(args.out, cfg)
        print(json.dumps(plan_json(cfg, args.out), indent=2))
        return 0
    only = list(args.only) if args.only else None
    if args.only_index is not None:
        names = [row["name"] for row in plan_json(cfg, args.out)]
        if not 0 <= args.only_index < len(names):
            raise UserError(f"--only-index {args.only_index} is outside the plan's 0..{len(names) - 1}")
        only = [names[args.only_index]]
    run_sweep(cfg, args.out, only=only, progress=not args.no_progress)
    if not only:
        print(f"report: {render_directory(args.out)}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="train and probe a grid of training sizes x model configs")
    p.add_argument("--out", required=True, help="sweep directory (created, or resumed)")
    p.add_argument("--models", type=names, default=("nano",),
                   help="comma-separated model configs (nano, micro, tiny, small, medium)")
    p.add_argument("--sizes", type=ints, default=None,
                   help="comma-separated training sizes (default: paper-like spacing)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps per run")
    p.add_argument("--batch-size", type=positive_int, default=32, help="global batch size")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default: the model's recipe)")
    p.add_argument("--warmup", type=nonnegative_int, default=None,
                   help="warm-up steps (default: the model's recipe)")
    p.add_argument("--ema", type=finite_float, default=None,
                   help="EMA decay (default: the model's recipe)")
    p.add_argument("--corpus", default="synthetic", help="synthetic | text:PATH | hf:NAME")
    p.add_argument("--tokenizer", default="auto", help="auto | gpt2 | word | bpe:N")
    p.add_argument("--block-length", type=positive_int, default=32, help="sequence length L")
    p.add_argument("--mode", choices=("pad", "wrap"), default="pad",
                   help="one sentence per sequence, or packed text")
    p.add_argument("--corpus-size", type=positive_int, default=60000,
                   help="synthetic: distinct sentences; else the most read")
    p.add_argument("--test-size", type=positive_int, default=1000, help="held-out test sequences")
    p.add_argument("--synthetic-words", type=nonnegative_int, default=0,
                   help="synthetic corpus: the most frequent words kept per open class (0: all)")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seed of initialisation, data order, noise and probes")
    p.add_argument("--loss-on-padding", action="store_true", help="train the pad positions too")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser and loss")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="training precision; auto is bf16 autocast where the hardware has it")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--probe-sequences", type=positive_int, default=64,
                   help="train/test sequences probed")
    p.add_argument("--reverse-steps", type=positive_int, default=50,
                   help="reverse-process steps (Exp. 1, 2)")
    p.add_argument("--num-samples", type=positive_int, default=128,
                   help="generated samples (Exp. 3)")
    p.add_argument("--generate-steps", type=positive_int, default=100, help="steps of generation")
    p.add_argument("--entropy-sequences", type=positive_int, default=256,
                   help="sequences for entropies")
    p.add_argument("--bootstrap", type=positive_int, default=1000,
                   help="bootstrap resamples for the probes' confidence intervals")
    p.add_argument("--probe-precision", choices=("fp32", "bf16"), default="fp32",
                   help="probe forward passes in fp32 or under bf16 autocast")
    p.add_argument("--only", type=names, default=None, help="run only these runs (see --plan)")
    p.add_argument("--only-index", type=nonnegative_int, default=None,
                   help="run only the plan's run with this index (e.g. a Slurm array task id)")
    p.add_argument("--plan", action="store_true",
                   help="check the sweep, write sweep.json, print the runs as JSON and exit")
    p.add_argument("--resume-config", action="store_true",
                   help="take every setting from SWEEP_DIR/sweep.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # A setting left out reads as _UNSET, so that --resume-config can tell it was not given
    # even when a given value equals the default; config_from_args fills in the defaults.
    defaults = {}
    for action in p._actions:
        if action.dest in SETTINGS:
            defaults[action.dest] = action.default
            action.default_from = lambda value=action.default: value      # for --help
            action.default = _UNSET
    p.set_defaults(setting_defaults=defaults)
    p.set_defaults(func=run)
