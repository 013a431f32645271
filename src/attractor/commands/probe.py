"""``attractor probe COMMAND RUN_DIR`` (or ``--model PATH --members ... --out OUT``): the
probes of :mod:`attractor.probes.registry` on a trained run or on any model an adapter opens.

One subcommand per registry command (``recovery``, ``entropy``, ``generate``); a command with
several probes (recovery: deterministic and stochastic) chooses them with ``--experiment``. Every
option comes from the probes' configs and :class:`attractor.adapters.subject.SubjectConfig`.
Results go to ``RUN_DIR/probes/`` (``OUT/probes/``); the report is rendered once they are
written.
"""

from __future__ import annotations

import argparse
import sys


def _selected(args: argparse.Namespace) -> list[str]:
    variants = args.variants
    chosen = getattr(args, "experiment", "all")
    return list(variants.values()) if chosen in ("all", "both") else [variants[chosen]]


def _configs(args: argparse.Namespace, names: list[str]) -> dict:
    from attractor.config import override
    from attractor.errors import UserError
    from attractor.probes.registry import PROBES

    for flag, paths in args.config_options.given(args).items():
        if not any(p.split(".")[0] in (*names, "subject") for p in paths):
            raise UserError(f"{flag} is a setting of {paths[0].split('.')[0]}, which "
                            f"--experiment {args.experiment} does not run")
    changes = args.config_options.changes(args)
    return {n: override(PROBES[n].config(), changes.get(n, {}), f"{n}.") for n in names}


def _target(args: argparse.Namespace):
    """The run, or the model and sequences of --model, with the directory results go to."""
    from attractor.adapters.subject import SubjectConfig, load_subject
    from attractor.config import override
    from attractor.errors import UserError, require
    from attractor.run import load_run

    subject = override(SubjectConfig(), args.config_options.changes(args).get("subject", {}),
                       "subject.")
    if subject.model is None:
        require(args.run_dir is not None and args.out is None,
                "give a RUN_DIR (a run of attractor train), or --model PATH with --out OUT")
        run = load_run(args.run_dir, device=args.device, precision=args.precision)
        if not run.finite:
            raise UserError(f"{args.run_dir} diverged: its weights are not finite, so there is "
                            "nothing to probe; train it again with a smaller --lr")
        if run.step < run.config.steps:
            print(f"note: {args.run_dir} is at step {run.step} of {run.config.steps} (training "
                  "not finished); probing the weights of that step", file=sys.stderr)
        return run
    require(args.run_dir is None, "give a RUN_DIR or --model, not both")
    require(args.out is not None, "--model needs --out OUT, the directory results go to")
    return load_subject(subject, args.out, device=args.device, precision=args.precision)


def _print(name: str, data: dict) -> None:
    from attractor.probes.registry import PROBES

    print(f"{name}:")
    for caption, rows in PROBES[name].tables(data):
        print(f"  {caption}")
        for row in rows:
            print("    " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in row.items()))
    t = data["timing"]
    print(f"  {t['sequences_per_s']:.1f} items/s, {100 * t['forward_fraction']:.0f}% of "
          f"{t['wall_s']:.1f} s in forward passes")


def _check_memory(configs: dict) -> None:
    """Refuse a bootstrap whose resamples cannot fit in memory, before any work."""
    from attractor.budget import check_bootstrap
    from attractor.config import leaves

    for name, config in configs.items():
        values = {leaf.path.split(".")[-1]: leaf.value for leaf in leaves(config)}
        rows = max([1, *(v for k, v in values.items()
                         if k in ("num_sequences", "num_samples", "num_reference"))])
        check_bootstrap(values.get("bootstrap", 1), rows, f"probe {name}")


def _directory(args: argparse.Namespace):
    """The directory the results go to (the run, or --out), or None when neither is given."""
    from pathlib import Path

    from attractor.errors import require
    from attractor.lock import output_dir

    if args.run_dir is not None:
        require(Path(args.run_dir).is_dir(), f"{args.run_dir} does not exist or is not a "
                "directory")
        return Path(args.run_dir)
    return None if args.out is None else output_dir(args.out)


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from attractor.device import join_process_group, probe_precision, resolve_device
    from attractor.errors import UserError
    from attractor.lock import hold

    names = _selected(args)
    configs = _configs(args, names)             # bad settings fail before the model loads
    if not 0 <= args.seed < 2**63:
        raise UserError(f"--seed must be >= 0 and below 2**63; got {args.seed}")
    _check_memory(configs)
    device = resolve_device(args.device)   # a device this machine lacks: refused before anything
    target = _directory(args)
    with hold(target, "attractor probe") if target is not None else nullcontext():
        rank, world, device = join_process_group(device)        # under torchrun: shard items
        args.precision = probe_precision(args.precision, device)
        return _probe(args, names, configs, str(device), (rank, world))


def _probe(args: argparse.Namespace, names: list[str], configs: dict, device: str,
           place: tuple[int, int]) -> int:
    import torch

    from attractor.checks import outputs_finite
    from attractor.errors import require
    from attractor.io import read_json
    from attractor.probes.items import Store, World
    from attractor.probes.output import check_writable, write_probe
    from attractor.probes.registry import run_probe
    from attractor.report.registry import render_directory

    check_writable(args.run_dir or args.out or ".", names, args.overwrite)
    args.device = device
    run = _target(args)
    require(outputs_finite(run), "the model's outputs (logits) are not finite on its own "
            "sequences, so no probe is defined; check its weights or use --precision fp32")
    world, paths = World(*place), []
    for name in names:
        store = Store(run.directory, name, replace=args.overwrite)
        result = run_probe(name, run, configs[name], torch.Generator().manual_seed(args.seed),
                           not args.no_progress, store, world)
        if world.rank == 0:
            paths.append(write_probe(run, name, result, args.overwrite))
            store.discard()                 # its rows are in <name>.jsonl now
    if world.rank != 0:
        return 0
    for name, path in zip(names, paths):    # printed once all work is written: a closed pipe
        _print(name, read_json(path))       # (e.g. | head) cannot cut the probes short
    print(f"report: {render_directory(run.directory)}")
    return 0


def _add_probe_command(probes, command: str, variants: dict[str, str]) -> None:
    from attractor.adapters.subject import SubjectConfig
    from attractor.options import add_common, add_config_options, parser_for
    from attractor.probes.registry import PROBES

    p = probes.add_parser(command, help="; ".join(PROBES[n].title for n in variants.values()))
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None,
                   help="a directory written by attractor train (or give --model)")
    p.add_argument("--out", default=None, help="with --model: the directory results go to")
    if len(variants) > 1:
        p.add_argument("--experiment", choices=(*variants, "both"), default="both",
                       help="which of the probes to run (default both)")
    p.add_argument("--seed", type=parser_for(int), default=0,
                   help="seed of every random draw (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="denoiser forward passes in fp32 or under bf16 autocast; posteriors are "
                        "float64 either way (default auto: bf16 on a CUDA device that has it, "
                        "else fp32)")
    add_common(p, "overwrite", "no_progress")
    add_config_options(p, {"subject": SubjectConfig(),
                           **{name: PROBES[name].config() for name in variants.values()}})
    p.set_defaults(func=run, variants=variants)


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.probes.registry import commands

    probes = p.add_subparsers(dest="probe_command", metavar="PROBE", parser_class=type(p))
    for command, variants in commands().items():
        _add_probe_command(probes, command, variants)
    names = ", ".join(commands())
    p.set_defaults(func=lambda args: p.error(f"choose a probe: {names}"))
