"""Training throughput and model FLOPs utilisation (MFU) of the DiT + uniform-state NELBO.

Writes benchmarks/results/train_throughput.json. Each configuration runs in a fresh subprocess so
that its peak resident memory is its own.

MFU = (FLOPs per token x tokens per second) / peak matmul FLOP/s, with
    FLOPs per token = 6 x (parameters excluding the input embedding and the once-per-sequence
                      conditioning MLP) + 12 x layers x d x L   (attention scores and values)
and the bf16 and fp32 matmul peaks measured in the same run.

    python benchmarks/train_throughput.py                 # nano, tiny at K=4096 and K=50258
    python benchmarks/train_throughput.py --configs tiny:4096 --precisions bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Sustained FLOP/s of square n x n matrix products in ``dtype`` on this CPU/GPU."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def flops_per_token(cfg, vocab: int, length: int) -> float:
    from attractor.model.configs import core_parameters

    return 6 * core_parameters(cfg, vocab) + 12 * cfg.blocks * cfg.hidden * length


def measure_one(model_name: str, vocab: int, precision: str, batch: int, length: int,
                steps: int, warmup: int, loss_impl: str = "fused", compile_model: bool = False) -> dict:
    """Time ``steps`` optimiser steps of one config (called in a subprocess)."""
    from attractor.loss import stratified_times
    from attractor.model import DiT, get_model_config
    from attractor.schedule import LogLinear
    from attractor.train.loop import diffusion_loss_terms

    torch.manual_seed(0)
    cfg = dataclasses.replace(get_model_config(model_name), dropout=0.0)
    model = DiT(cfg, vocab)
    net = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)   # as the trainer
    gen = torch.Generator().manual_seed(0)
    amp = torch.bfloat16 if precision == "bf16" else None
    x0 = torch.randint(0, vocab, (batch, length), generator=gen)
    schedule = LogLinear()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        t = stratified_times(batch, gen)
        loss = diffusion_loss_terms(net, x0, t, schedule, gen, amp,
                                    loss_impl == "fused", compile_model).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step_s = sorted(times)[len(times) // 2]
    return {"model": model_name, "vocab": vocab, "precision": precision, "batch": batch,
            "loss": loss_impl, "compile": compile_model,
            "allocator": os.environ.get("LD_PRELOAD", "") or "glibc",
            "length": length, "step_s_median": step_s, "tokens_per_s": batch * length / step_s,
            "flops_per_token": flops_per_token(cfg, vocab, length),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["nano:4096", "tiny:4096", "tiny:50258"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--losses", nargs="+", default=["fused", "reference"])
    parser.add_argument("--allocators", nargs="+", default=["jemalloc", "glibc"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:                              # child process: one measurement, JSON on stdout
        name, vocab, precision, loss, comp = args.one.split(":")
        print(json.dumps(measure_one(name, int(vocab), precision, args.batch, args.length,
                                     args.steps, args.warmup, loss, comp == "1")))
        return
    # Peaks are measured before and after the runs and the larger kept, so that a moment of
    # contention cannot understate them (and so overstate MFU).
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    rows = []
    variants = [(p, loss, alloc, comp) for p in args.precisions for loss in args.losses
                for alloc in args.allocators for comp in ([0, 1] if args.compile else [0])]
    for spec in args.configs:
        for precision, loss, alloc, comp in variants:
            env = dict(os.environ)
            env.pop("LD_PRELOAD", None)
            env.pop("MALLOC_CONF", None)
            if alloc != "glibc":
                from _allocators import find_library, preload_env

                lib = find_library(alloc)
                if lib is None:
                    print(f"skipping {alloc}: not installed")
                    continue
                env = preload_env(lib, env)           # the same settings as the CLI
            cmd = [sys.executable, __file__, "--one", f"{spec}:{precision}:{loss}:{comp}",
                   "--batch", str(args.batch), "--length", str(args.length), "--steps",
                   str(args.steps), "--warmup", str(args.warmup)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
            row = json.loads(out.strip().splitlines()[-1])
            achieved = row["flops_per_token"] * row["tokens_per_s"]
            row["mfu_vs_bf16_peak"] = achieved / peaks["bf16"]
            row["mfu_vs_fp32_peak"] = achieved / peaks["fp32"]
            rows.append(row)
            print(f"{spec:12s} {precision} {loss:9s} {alloc:8s} compile={comp}: "
                  f"{row['tokens_per_s']:8.0f} tok/s  "
                  f"MFU {row['mfu_vs_bf16_peak']:.1%} of bf16 peak, "
                  f"{row['mfu_vs_fp32_peak']:.1%} of fp32 peak  "
                  f"peak RSS {row['peak_rss_gib']:.2f} GiB", flush=True)
    peaks = {"bf16": max(peaks["bf16"], matmul_peak(torch.bfloat16)),
             "fp32": max(peaks["fp32"], matmul_peak(torch.float32))}
    for row in rows:
        achieved = row["flops_per_token"] * row["tokens_per_s"]
        row["mfu_vs_bf16_peak"] = achieved / peaks["bf16"]
        row["mfu_vs_fp32_peak"] = achieved / peaks["fp32"]
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "ld_preload": os.environ.get("LD_PRELOAD", ""),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "matmul_peak_flops": peaks,
        "runs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
