"""``attractor probe recovery|entropy|generate RUN_DIR``: the paper's three experiments on a run.

Results go to ``RUN_DIR/probes/`` (see :mod:`attractor.probes.output`).
"""

from __future__ import annotations

import argparse
import sys

from attractor.commands.args import floats, nonnegative_int, positive_float, positive_int

T_DEFAULT = 0.25                        # Exp. 1 diffusion time, as in the paper


def _load(args: argparse.Namespace):
    import torch

    from attractor.errors import UserError
    from attractor.run import load_run

    run = load_run(args.run_dir, device=args.device, precision=args.precision)
    if not run.finite:
        raise UserError(f"{args.run_dir} diverged: its weights are not finite, so there is "
                        "nothing to probe; train it again with a smaller --lr")
    if run.step < run.config.steps:
        print(f"note: {args.run_dir} is at step {run.step} of {run.config.steps} (training not "
              "finished); probing the weights of that step", file=sys.stderr)
    return run, torch.Generator().manual_seed(args.seed)


def _report(paths) -> int:
    for path in paths:
        print(f"wrote {path}")
    print(f"report: {paths[-1].parent / 'report.html'}")
    return 0


def run_recovery_command(args: argparse.Namespace) -> int:
    from attractor.errors import UserError
    from attractor.probes.output import check_writable, probes_dir
    from attractor.probes.recovery import deterministic_config, stochastic_config

    experiments = ("deterministic", "stochastic") if args.experiment == "both" else (args.experiment,)
    for flag, value, used_by in (("--fractions", args.fractions, "deterministic"),
                                 ("--t", args.t, "deterministic"),
                                 ("--times", args.times, "stochastic")):
        if value is not None and used_by not in experiments:
            raise UserError(f"{flag} belongs to the {used_by} experiment, which "
                            f"--experiment {args.experiment} does not run")
    shared = {"num_sequences": args.num_sequences, "max_batch": args.max_batch,
                  "bootstrap": args.bootstrap, "examples": args.examples}
    configs = []
    for exp in experiments:
        if exp == "deterministic":
            kw = {"fractions": args.fractions} if args.fractions else {}
            t = T_DEFAULT if args.t is None else args.t
            configs.append(deterministic_config(t=t, steps=args.steps, **kw, **shared))
        else:
            kw = {"times": args.times} if args.times else {}
            configs.append(stochastic_config(steps=args.steps, **kw, **shared))
    for cfg in configs:
        cfg.validate()                      # bad grids fail before the model is loaded
    if len(experiments) == 2 and not args.overwrite:
        missing = [e for e in experiments if not (probes_dir(args.run_dir)
                                                  / f"recovery_{e}.json").exists()]
        if len(missing) == 1:
            raise UserError(f"{probes_dir(args.run_dir)} already holds one of the two recovery "
                            f"experiments; run --experiment {missing[0]} for the other, or pass "
                            "--overwrite to redo both")
    check_writable(args.run_dir, [f"recovery_{c.experiment}" for c in configs], args.overwrite)
    return _run_probes(args, configs)


def _run_probes(args: argparse.Namespace, configs) -> int:
    from attractor.probes.output import write_probe
    from attractor.probes.recovery import run_recovery

    run, generator = _load(args)
    results, paths = [], []
    for cfg in configs:
        results.append(run_recovery(run, cfg, generator, progress=not args.quiet))
        paths.append(write_probe(run, results[-1], args.overwrite))
    for result in results:              # printed once all work is written: a closed pipe
        _print_recovery(result)         # (e.g. | head) cannot cut the probes short
    return _report(paths)


def _print_recovery(result) -> None:
    name = result.config.level_name
    print(f"{result.name}: {name}  train recovery [95% CI]  test recovery [95% CI]")
    for e in result.summary:
        tr, te = e["train"]["recovery"], e["test"]["recovery"]
        print(f"  {e[name]:<6g} {tr['mean']:.3f} [{tr['lo']:.3f}, {tr['hi']:.3f}]  "
              f"{te['mean']:.3f} [{te['lo']:.3f}, {te['hi']:.3f}]")
    t = result.timing.to_dict()
    print(f"  {t['sequences_per_s']:.1f} sequences/s, {100 * t['forward_fraction']:.0f}% of "
          f"{t['wall_s']:.1f} s in forward passes")


def run_entropy_command(args: argparse.Namespace) -> int:
    from attractor.probes.entropy import EntropyConfig, run_entropy
    from attractor.probes.output import check_writable, write_probe

    cfg = EntropyConfig(times=args.times or (1e-5,), num_sequences=args.num_sequences,
                        max_batch=args.max_batch, bootstrap=args.bootstrap)
    cfg.validate()
    check_writable(args.run_dir, ["entropy"], args.overwrite)
    run, generator = _load(args)
    result = run_entropy(run, cfg, generator, progress=not args.quiet)
    for e in result.summary:
        print(f"t = {e['t']:g}: sequence entropy train {e['train']['mean']:.3f} nats, "
              f"test {e['test']['mean']:.3f} nats, AUROC {e['auroc_train_vs_test']:.3f}")
    return _report([write_probe(run, result, args.overwrite)])


def run_generate_command(args: argparse.Namespace) -> int:
    from attractor.probes.generate import GenerateConfig, run_generate
    from attractor.probes.output import check_writable, write_probe
    from attractor.sampler import SamplerConfig

    cfg = GenerateConfig(num_samples=args.num_samples,
                         sampler=SamplerConfig(steps=args.steps, final=args.final),
                         num_reference=args.num_reference, near_copy=args.near_copy,
                         max_batch=args.max_batch, bootstrap=args.bootstrap)
    cfg.validate()
    check_writable(args.run_dir, ["generate"], args.overwrite)
    run, generator = _load(args)
    result = run_generate(run, cfg, generator, progress=not args.quiet)
    s = result.summary
    print(f"sequence entropy: generated {s['entropy']['generated']['mean']:.3f}, train "
          f"{s['entropy']['train']['mean']:.3f} nats (gap {s['entropy_gap']['mean']:.3f})")
    print("categories: " + ", ".join(f"{k} {v:.3f}" for k, v in s["categories"].items() if v))
    return _report([write_probe(run, result, args.overwrite)])


def _common(p: argparse.ArgumentParser, num_sequences: int, steps: int | None) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by attractor train")
    if num_sequences:
        p.add_argument("--num-sequences", type=positive_int, default=num_sequences,
                       help="train and test sequences each, at most (fewer if a split is smaller)")
    if steps:
        p.add_argument("--steps", type=positive_int, default=steps, help="reverse steps")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every random draw")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="denoiser forward passes in fp32 or under bf16 autocast; posteriors are "
                        "float64 either way (default fp32)")
    p.add_argument("--max-batch", type=positive_int, default=256, help="rows per denoiser call")
    p.add_argument("--bootstrap", type=positive_int, default=1000,
                   help="bootstrap resamples for CIs")
    p.add_argument("--overwrite", action="store_true", help="replace existing probe results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="token recovery, conditional entropy and generation probes")
    probes = p.add_subparsers(dest="probe_command", metavar="PROBE", parser_class=type(p))
    rec = probes.add_parser("recovery", help="Exp. 1-2: basins of train vs test sequences")
    _common(rec, 64, 100)
    rec.add_argument("--experiment", choices=("deterministic", "stochastic", "both"),
                     default="both", help="which retrieval experiment (default both)")
    rec.add_argument("--t", type=positive_float, default=None,
                     help=f"Exp. 1 fixed diffusion time (default {T_DEFAULT})")
    rec.add_argument("--fractions", type=floats, default=None,
                     help="Exp. 1 corrupted fractions (default 0.1,...,0.9)")
    rec.add_argument("--times", type=floats, default=None,
                     help="Exp. 2 noise levels t (default 0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5)")
    rec.add_argument("--examples", type=nonnegative_int, default=3, help="HTML examples per split")
    rec.set_defaults(func=run_recovery_command)
    ent = probes.add_parser("entropy", help="sequence conditional entropy, train vs test")
    _common(ent, 256, None)
    ent.add_argument("--times", type=floats, default=None, help="times t (default 1e-5)")
    ent.set_defaults(func=run_entropy_command)
    gen = probes.add_parser("generate", help="Exp. 3: samples, their entropy and copies")
    _common(gen, 0, 256)
    gen.add_argument("--num-samples", type=positive_int, default=64, help="samples")
    gen.add_argument("--final", choices=("ancestral", "greedy", "none"), default="ancestral",
                     help="final denoising step (default ancestral)")
    gen.add_argument("--num-reference", type=positive_int, default=1000,
                     help="train/test sequences for the entropy histograms")
    gen.add_argument("--near-copy", type=float, default=0.1,
                     help="near copy: Hamming distance <= this fraction of the length")
    gen.set_defaults(func=run_generate_command)
    # ``attractor probe`` alone: name the three probes.
    p.set_defaults(func=lambda args: p.error("choose a probe: recovery, entropy or generate"))
