"""Training throughput and model FLOPs utilisation (MFU) of the DiT + uniform-state NELBO.

Measures what ``attractor train`` runs with its defaults: the model config's own dropout (tiny,
small, medium: 0.1; nano, micro: 0), and per step the trainer's work on a batch with no pads:
corruption, forward pass (bf16 autocast or fp32), loss, backward, gradient clipping at 1.0, fused
AdamW and the EMA update. ``--dropout 0`` reproduces the earlier dropout-free measurements.
Heads (``--losses``): ``auto`` (what the trainer picks: ``fused`` from K = 1024 on, else
``logits``), ``logits`` (the (B, L, K) logits, then loss_fused), ``fused`` and ``recompute`` (the
output layer fused with the loss, attractor.head_loss), and ``reference`` (the logits, then
loss.py's unfused NELBO).

Writes benchmarks/results/train_throughput.json. Each configuration runs in a fresh subprocess so
that its peak memory is its own. Runs on CUDA when there is one (``--device``).

MFU = (FLOPs per token x tokens per second) / peak matmul FLOP/s, with
    FLOPs per token = 6 x (parameters excluding the input embedding and the once-per-sequence
                      conditioning MLP) + 12 x layers x d x L   (attention scores and values)
and the bf16 and fp32 matmul peaks measured in the same run.

    python benchmarks/train_throughput.py                 # nano, tiny at K=4096 and K=50258
    python benchmarks/train_throughput.py --configs tiny:4096 --precisions bf16 --losses logits fused
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
LOSSES = ("auto", "logits", "fused", "recompute", "reference")
STEP = ("corruption, forward, loss, backward, gradient clip 1.0, fused AdamW, EMA update "
        "(what `attractor train` runs per step)")


def device_of(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0, device: str = "auto") -> float:
    """Sustained FLOP/s of square n x n matrix products in ``dtype`` on this CPU/GPU."""
    dev = device_of(device)
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    for _ in range(3):
        a @ b
    synchronize(dev)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        if dev.type == "cuda" and reps % 16 == 0:
            synchronize(dev)
    synchronize(dev)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def flops_per_token(cfg, vocab: int, length: int) -> float:
    from attractor.model.configs import core_parameters

    return 6 * core_parameters(cfg, vocab) + 12 * cfg.blocks * cfg.hidden * length


def model_config(model_name: str, dropout: float | None):
    """The named config as the CLI trains it; ``dropout`` overrides its dropout if given."""
    from attractor.model import get_model_config

    cfg = get_model_config(model_name)
    return cfg if dropout is None else dataclasses.replace(cfg, dropout=dropout)


def attractor_step(state: dict, x0: torch.Tensor, gen: torch.Generator, amp, loss_impl: str,
                   compiled: bool = False) -> float:
    """One optimiser step as the trainer takes it (trainer._train_step, one micro-batch, no pads):
    times and corruption drawn on the CPU and moved, loss, backward, clip, AdamW, EMA. ``state``
    holds model, net, opt, ema, schedule, device. Returns the loss."""
    from attractor.forward import q_xt
    from attractor.head_loss import resolve_head
    from attractor.loss import stratified_times
    from attractor.train.loop import ema_decay, ema_update, loss_terms
    from attractor.train.objectives import Objective

    model, device, schedule = state["model"], state["device"], state["schedule"]
    t = stratified_times(x0.shape[0], gen)
    zt = q_xt(x0, schedule.alpha(t), model.vocab_size, gen).to(device)
    x0, t = x0.to(device), t.to(device)
    state["opt"].zero_grad(set_to_none=True)
    if loss_impl == "reference":
        per_token = loss_terms(state["net"], x0, zt, t, schedule, amp, False, compiled)
    else:                                          # the trainer's objective with this head
        head = resolve_head(loss_impl, model.vocab_size, compiled)
        objective = Objective("uniform", schedule, model.vocab_size, amp, compiled, head)
        per_token = objective.loss(state["net"], x0, zt, t)
    loss = per_token.sum() / per_token.numel()
    loss.backward()
    float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    state["opt"].step()
    ema_update(state["ema"], dict(model.state_dict()), ema_decay(state.setdefault("step", 0), 0.999))
    state["step"] += 1
    return float(loss.detach())


def attractor_state(cfg, vocab: int, device: torch.device, compile_model: bool = False) -> dict:
    """Model, optimiser (fused AdamW, the trainer's defaults) and EMA, seeded."""
    from attractor.device import keep_freed_memory
    from attractor.model import DiT
    from attractor.schedule import LogLinear

    kept = device.type == "cpu" and keep_freed_memory()      # as the trainer does on the CPU
    torch.manual_seed(0)
    model = DiT(cfg, vocab).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=device.type in ("cpu", "cuda"))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    net = torch.compile(model) if compile_model else model
    return {"model": model, "net": net, "opt": opt, "ema": ema, "schedule": LogLinear(),
            "device": device,
            "allocator": os.environ.get("LD_PRELOAD") or ("glibc, freed memory kept (mallopt)"
                                                          if kept else "glibc")}


def time_steps(step, device: torch.device, steps: int, warmup: int) -> float:
    """Median seconds of ``step()`` over ``steps`` calls after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_memory_gib(device: torch.device) -> dict:
    out = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if device.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def measure_one(spec: str, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` optimiser steps of one config, ``name:vocab:precision:loss:compile``
    (called in a subprocess)."""
    name, vocab, precision, loss_impl, comp = spec.split(":")
    vocab, compile_model = int(vocab), comp == "1"
    dev = device_of(args.device)
    cfg = model_config(name, args.dropout)
    state = attractor_state(cfg, vocab, dev, compile_model)
    gen = torch.Generator().manual_seed(0)
    amp = torch.bfloat16 if precision == "bf16" else None
    batch, length = args.batch, args.length
    x0 = torch.randint(0, vocab, (batch, length), generator=gen)
    step_s = time_steps(lambda: attractor_step(state, x0, gen, amp, loss_impl, compile_model),
                        dev, args.steps, args.warmup)
    return {"model": name, "vocab": vocab, "precision": precision, "batch": batch,
            "loss": loss_impl, "compile": compile_model, "dropout": cfg.dropout,
            "device": str(dev), "allocator": state["allocator"],
            "length": length, "step_s_median": step_s, "tokens_per_s": batch * length / step_s,
            "flops_per_token": flops_per_token(cfg, vocab, length), **peak_memory_gib(dev)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["nano:4096", "tiny:4096", "tiny:50258"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--losses", nargs="+", default=["auto", "logits"], choices=LOSSES)
    parser.add_argument("--allocators", nargs="+", default=["jemalloc", "glibc"])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--dropout", type=float, default=None,
                        help="override the model config's dropout (default: the config's, as the CLI)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="passes over all configs")
    parser.add_argument("--peak-size", type=int, default=2048, help="n of the n^3 peak products")
    parser.add_argument("--peak-seconds", type=float, default=2.0)
    parser.add_argument("--out", default=str(RESULTS / "train_throughput.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _child_env(alloc: str) -> dict | None:
    """The environment of one measurement: no preload for glibc, else the allocator preloaded as
    the CLI would (None if it is not installed)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_CONF", None)
    if alloc == "glibc":
        return env
    from _allocators import find_library, preload_env

    lib = find_library(alloc)
    return None if lib is None else preload_env(lib, env)


def run_child(args, spec: str, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--one", spec, "--batch", str(args.batch), "--length",
           str(args.length), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--device", args.device]
    if args.dropout is not None:
        cmd += ["--dropout", str(args.dropout)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _add_mfu(row: dict, peaks: dict) -> None:
    achieved = row["flops_per_token"] * row["tokens_per_s"]
    row["mfu_vs_bf16_peak"] = achieved / peaks["bf16"]
    row["mfu_vs_fp32_peak"] = achieved / peaks["fp32"]


def _peaks(args, before: dict | None = None) -> dict:
    """Matmul peaks; with ``before``, the larger of both measurements, so that a moment of
    contention cannot understate them (and so overstate MFU)."""
    now = {name: matmul_peak(dtype, args.peak_size, args.peak_seconds, args.device)
           for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))}
    return {k: max(v, before[k]) for k, v in now.items()} if before else now


def measure_all(args) -> tuple[list[dict], dict]:
    """Every config x variant once per round, in reverse order every other round; a row holds
    the median over rounds and each round's tokens/s (the host's speed drifts between runs)."""
    variants = [(p, loss, alloc, comp) for p in args.precisions for loss in args.losses
                for alloc in args.allocators for comp in ([0, 1] if args.compile else [0])]
    jobs = [(spec, *v) for spec in args.configs for v in variants]
    peaks, runs = _peaks(args), {}
    for r in range(args.rounds):
        for spec, precision, loss, alloc, comp in (jobs if r % 2 == 0 else jobs[::-1]):
            env = _child_env(alloc)
            if env is None:
                print(f"skipping {alloc}: not installed")
                continue
            row = run_child(args, f"{spec}:{precision}:{loss}:{comp}", env)
            runs.setdefault((spec, precision, loss, alloc, comp), []).append(row)
            print(f"round {r + 1}: {spec:12s} {precision} {loss:10s} {alloc:8s} compile={comp} "
                  f"dropout={row['dropout']}: {row['tokens_per_s']:8.0f} tok/s  "
                  f"peak RSS {row['peak_rss_gib']:.2f} GiB", flush=True)
    peaks = _peaks(args, peaks)
    rows = [_median_row(runs[job]) for job in jobs if job in runs]
    for row in rows:
        _add_mfu(row, peaks)
        print(f"{row['model']}:{row['vocab']} {row['precision']} {row['loss']:10s} "
              f"compile={int(row['compile'])}: {row['tokens_per_s']:8.0f} tok/s (median of "
              f"{len(row['tokens_per_s_rounds'])})  MFU {row['mfu_vs_bf16_peak']:.1%} of bf16 "
              f"peak  peak RSS {row['peak_rss_gib']:.2f} GiB")
    return rows, peaks


def _median_row(rounds: list[dict]) -> dict:
    """One config's rounds as one row: median step time, every round's tokens/s, largest RSS."""
    step = statistics.median(r["step_s_median"] for r in rounds)
    row = {**rounds[0], "step_s_median": step,
           "tokens_per_s": rounds[0]["batch"] * rounds[0]["length"] / step,
           "tokens_per_s_rounds": [r["tokens_per_s"] for r in rounds]}
    for key in ("peak_rss_gib", "peak_gpu_gib"):
        if key in row:
            row[key] = max(r[key] for r in rounds)
    return row


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.one:                              # child process: one measurement, JSON on stdout
        print(json.dumps(measure_one(args.one, args)))
        return
    print(f"one step = {STEP}; dropout: "
          f"{'the model config' if args.dropout is None else args.dropout}", flush=True)
    rows, peaks = measure_all(args)
    dev = device_of(args.device)
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "ld_preload": os.environ.get("LD_PRELOAD", ""),
                    "cuda": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None},
        "step": STEP, "dropout": "model config" if args.dropout is None else args.dropout,
        "matmul_peak_flops": peaks, "runs": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
