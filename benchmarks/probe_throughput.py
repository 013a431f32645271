"""Probe throughput: sequences per second and the share of wall time in denoiser forward passes.

Trains a `tiny` model for a few steps (in a child process) on the synthetic corpus with the
GPT-2 tokenizer (K = 50258, L = 128, so the per-step posterior work is as large as in the
paper's setting), then times the probes at each precision of the denoiser's forward pass
(fp32, bf16 autocast), on CUDA when there is one (``--device``). Writes
benchmarks/results/probe_throughput.json.

    python benchmarks/probe_throughput.py [--model tiny] [--tokenizer gpt2] [--sequences 32]
                                          [--precisions fp32,bf16] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
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
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--corpus-size", type=int, default=3000, help="synthetic sentences")
    parser.add_argument("--num-train", type=int, default=512, help="training sequences")
    parser.add_argument("--out", default=str(RESULTS / "probe_throughput.json"))
    args = parser.parse_args()

    from attractor.config import override
    from attractor.run import load_run
    from attractor.train.config import TrainConfig
    from attractor.train.trainer import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = override(TrainConfig(), {
            "model_name": args.model, "num_train": args.num_train, "steps": 2, "batch_size": 8,
            "eval_every": 2, "eval_sequences": 8, "checkpoint_every": 2, "device": args.device,
            "data": {"tokenizer": args.tokenizer, "block_length": args.block_length,
                     "corpus_size": args.corpus_size,
                     "test_size": min(256, args.corpus_size // 4)}})
        _train_in_a_child(train, cfg, Path(tmp) / "run")
        for precision in args.precisions.split(","):
            run = load_run(Path(tmp) / "run", device=args.device, precision=precision)
            rows += _time_probes(run, args, precision)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "ld_preload": os.environ.get("LD_PRELOAD", ""),
                          "device": str(run.device),
                          "cuda": (torch.cuda.get_device_name(run.device)
                                   if run.device.type == "cuda" else None)},
              "model": args.model, "vocab": run.vocab_size, "block_length": args.block_length,
              "reverse_steps": args.steps, "probes": rows,
              "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _train_in_a_child(train, cfg, path: Path) -> None:
    """Train the probed model in a child process: this process's peak memory and malloc settings
    are then the probes' own, as in ``attractor probe``, which trains nothing."""
    child = multiprocessing.get_context("spawn").Process(target=train, args=(cfg, path),
                                                         kwargs={"progress": False})
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"training the probed model failed (exit code {child.exitcode})")


def _time_probes(run, args, precision: str) -> list[dict]:
    """Every registered probe with ``args.steps`` reverse steps on ``args.sequences`` sequences
    per split (4x that for the entropies, which need one forward pass each)."""
    import dataclasses

    from attractor.config import from_dict
    from attractor.probes.registry import PROBES, run_probe

    small = {"reverse_steps": args.steps, "num_samples": args.sequences,
             "num_reference": 4 * args.sequences, "common": {"bootstrap": 100}}
    rows = []
    for name, probe in PROBES.items():
        fields = {f.name for f in dataclasses.fields(probe.config)}
        n = 4 * args.sequences if name == "entropy" else args.sequences
        probe_cfg = from_dict(probe.config, {**{k: v for k, v in small.items() if k in fields},
                                             **({"num_sequences": n} if "num_sequences" in fields
                                                else {})})
        start = time.perf_counter()
        result = run_probe(name, run, probe_cfg, torch.Generator().manual_seed(0), False)
        timing = result.timing.to_dict()
        rows.append({"probe": name, "precision": precision,
                     "wall_s": time.perf_counter() - start, **timing})
        print(f"{name:24s} {precision}  {timing['sequences_per_s']:8.2f} seq/s  "
              f"forward {timing['forward_fraction']:.0%} of {timing['wall_s']:.1f} s", flush=True)
    return rows


if __name__ == "__main__":
    main()
