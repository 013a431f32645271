"""``attractor sweep --out SWEEP_DIR``: train and probe a grid of training sizes x models.

Restarting the same command resumes: finished runs and probes are skipped. ``--plan`` prints
the runs as JSON so that each can be dispatched as its own job (``--only NAME``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(float(p)) for p in text.split(",") if p.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from err


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def config_from_args(args: argparse.Namespace):
    from dataclasses import replace

    from attractor.data import DataConfig
    from attractor.errors import UserError
    from attractor.sweep.config import ProbeSettings, SweepConfig, paper_spaced_sizes
    from attractor.sweep.runner import load_sweep_config

    if args.resume_config:
        return load_sweep_config(args.out)
    data = replace(DataConfig(), corpus=args.corpus, tokenizer=args.tokenizer,
                   block_length=args.block_length, corpus_size=args.corpus_size,
                   test_size=args.test_size, mode=args.mode)
    if args.sizes is not None and len(args.sizes) == 0:
        raise UserError("--sizes is empty; give comma-separated training sizes")
    sizes = args.sizes or paper_spaced_sizes(data.corpus_size - data.test_size
                                             if data.corpus == "synthetic" else 100000)
    probes = replace(ProbeSettings(), num_sequences=args.probe_sequences,
                     reverse_steps=args.reverse_steps, num_samples=args.num_samples,
                     generate_steps=args.generate_steps, entropy_sequences=args.entropy_sequences,
                     precision=args.probe_precision)
    return SweepConfig(data=data, models=args.models, sizes=tuple(sizes), steps=args.steps,
                       batch_size=args.batch_size, seed=args.seed, precision=args.precision,
                       loss_on_padding=args.loss_on_padding, compile=args.compile,
                       device=args.device, probes=probes)


def run(args: argparse.Namespace) -> int:
    from attractor.errors import UserError
    from attractor.report.registry import render_directory
    from attractor.sweep.plan import plan_json
    from attractor.sweep.runner import init_sweep_dir, run_sweep

    cfg = config_from_args(args)
    cfg.validate()
    if args.plan:                   # the jobs it lists read their settings from sweep.json
        init_sweep_dir(Path(args.out), cfg)
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
    p.add_argument("--models", type=_names, default=("nano",), help="comma-separated configs")
    p.add_argument("--sizes", type=_ints, default=None,
                   help="comma-separated training sizes (default: paper-like spacing)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per run")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--corpus", default="synthetic")
    p.add_argument("--tokenizer", default="auto")
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--mode", default="pad")
    p.add_argument("--corpus-size", type=int, default=60000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss-on-padding", action="store_true", help="train the pad positions too")
    p.add_argument("--compile", action="store_true", help="torch.compile the denoiser and loss")
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--probe-sequences", type=int, default=64, help="train/test sequences probed")
    p.add_argument("--reverse-steps", type=int, default=50, help="reverse-process steps (Exp. 1, 2)")
    p.add_argument("--num-samples", type=int, default=128, help="generated samples (Exp. 3)")
    p.add_argument("--generate-steps", type=int, default=100, help="steps of generation")
    p.add_argument("--entropy-sequences", type=int, default=256, help="sequences for entropies")
    p.add_argument("--probe-precision", choices=("fp32", "bf16"), default="fp32",
                   help="probe forward passes in fp32 or under bf16 autocast (default fp32)")
    p.add_argument("--only", type=_names, default=None, help="run only these runs (see --plan)")
    p.add_argument("--only-index", type=int, default=None,
                   help="run only the plan's run with this index (e.g. a Slurm array task id)")
    p.add_argument("--plan", action="store_true", help="print the runs as JSON and exit")
    p.add_argument("--resume-config", action="store_true",
                   help="take every setting from SWEEP_DIR/sweep.json")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
