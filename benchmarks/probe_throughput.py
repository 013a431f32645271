"""Probe throughput: sequences per second and the share of wall time in denoiser forward passes.

Trains a `tiny` model for a few steps on the synthetic corpus with the GPT-2 tokenizer (K = 50258,
L = 128, so the per-step posterior work is as large as in the paper's setting), then times the
probes at each precision of the denoiser's forward pass (fp32, bf16 autocast). Writes
benchmarks/results/probe_throughput.json.

    python benchmarks/probe_throughput.py [--model tiny] [--tokenizer gpt2] [--sequences 32]
                                          [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tokenizer", default="gpt2")
    parser.add_argument("--block-length", type=int, default=128)
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--steps", type=int, default=25, help="reverse-process steps")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--out", default=str(RESULTS / "probe_throughput.json"))
    args = parser.parse_args()

    from attractor.data import DataConfig
    from attractor.run import load_run
    from attractor.train.config import make_config
    from attractor.train.trainer import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = DataConfig(tokenizer=args.tokenizer, block_length=args.block_length,
                          corpus_size=3000, test_size=256)
        cfg = make_config(args.model, data=data, num_train=512, steps=2, batch_size=8,
                          eval_every=2, eval_sequences=8, checkpoint_every=2)
        train(cfg, Path(tmp) / "run", progress=False)
        for precision in args.precisions.split(","):
            run = load_run(Path(tmp) / "run", precision=precision)
            rows += _time_probes(run, args, precision)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "ld_preload": os.environ.get("LD_PRELOAD", "")},
              "model": args.model, "vocab": run.vocab_size, "block_length": args.block_length,
              "reverse_steps": args.steps, "probes": rows,
              "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _time_probes(run, args, precision: str) -> list[dict]:
    from attractor.probes.entropy import EntropyConfig, run_entropy
    from attractor.probes.generate import GenerateConfig, run_generate
    from attractor.probes.recovery import deterministic_config, run_recovery, stochastic_config
    from attractor.sampler import SamplerConfig

    rows = []
    probes = {
        "recovery_stochastic": (run_recovery, stochastic_config(
            steps=args.steps, num_sequences=args.sequences, bootstrap=100)),
        "recovery_deterministic": (run_recovery, deterministic_config(
            steps=args.steps, num_sequences=args.sequences, bootstrap=100)),
        "entropy": (run_entropy, EntropyConfig(num_sequences=4 * args.sequences,
                                               bootstrap=100)),
        "generate": (run_generate, GenerateConfig(
            num_samples=args.sequences, sampler=SamplerConfig(steps=args.steps),
            num_reference=4 * args.sequences, bootstrap=100)),
    }
    for name, (fn, probe_cfg) in probes.items():
        start = time.perf_counter()
        result = fn(run, probe_cfg, torch.Generator().manual_seed(0), progress=False)
        timing = result.timing.to_dict()
        rows.append({"probe": name, "precision": precision,
                     "wall_s": time.perf_counter() - start, **timing})
        print(f"{name:24s} {precision}  {timing['sequences_per_s']:8.2f} seq/s  "
              f"forward {timing['forward_fraction']:.0%} of {timing['wall_s']:.1f} s", flush=True)
    return rows


if __name__ == "__main__":
    main()
