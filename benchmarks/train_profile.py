"""Where a training step's time goes: phases, matrix products and the largest operators.

For each configuration, times the phases of the trainer's optimiser step (corruption; forward
pass with the head and loss, ``--head``, default what `attractor train` picks; backward; AdamW)
over a few steps, then profiles one step with torch.profiler and splits the operator time into
the output projection's matrix products (forward and backward), the other matrix products,
attention, and the rest; the FLOP/s the matrix products themselves reach is set against the
machine's matmul peak measured in the same run. The model has its config's dropout, as
``attractor train`` trains it (tiny: 0.1), and glibc keeps freed memory as the trainer has it.
Writes benchmarks/results/train_profile.json.

    python benchmarks/train_profile.py [--configs tiny:4096 tiny:50258] [--precision bf16]
                                       [--head auto|logits|fused|recompute]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
from train_throughput import flops_per_token, matmul_peak

RESULTS = Path(__file__).parent / "results"
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def _matmul_dims(name: str, shapes: list) -> tuple[int, ...]:
    """(n, k, m) of one mm / addmm call ((b, n, k, m) for bmm) from its recorded input shapes."""
    a, b = (shapes[1], shapes[2]) if name == "aten::addmm" else (shapes[0], shapes[1])
    if len(a) < 2 or len(b) < 2:
        return ()
    return (*a, b[-1])


def _is_output_projection(dims: tuple[int, ...], tokens: int, hidden: int, vocab: int) -> bool:
    """The head's products (forward, and both of its backward) multiply tokens x hidden x K: a
    chunk of the tokens in the fused head, hidden + 1 where its backward carries the bias; K
    appears twice when it equals the number of tokens."""
    return (dims.count(vocab) >= (2 if vocab == tokens else 1)
            and (hidden in dims or hidden + 1 in dims))


def _phases(model, opt, x0, objective, gen, steps: int) -> dict:
    """Seconds per phase of the trainer's step (the objective's corruption, then its loss:
    the denoiser's forward pass with the head and loss of ``objective.head``)."""
    from attractor.loss import stratified_times

    totals: dict[str, float] = {}

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        totals[name] = totals.get(name, 0.0) + now - start
        return now

    for _ in range(steps):
        t0 = time.perf_counter()
        t = stratified_times(x0.shape[0], gen)
        zt = objective.corrupt(x0, t, gen)
        t0 = lap("corruption", t0)
        loss = objective.loss(model, x0, zt, t).mean()
        t0 = lap("forward and loss", t0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t0 = lap("backward", t0)
        opt.step()
        lap("AdamW step", t0)
    return {k: v / steps for k, v in totals.items()}


def profile_one(model_name: str, vocab: int, precision: str, batch: int, length: int,
                steps: int, peak: float, head: str = "auto") -> dict:
    from attractor.device import keep_freed_memory
    from attractor.head_loss import resolve_head
    from attractor.model import DiT, get_model_config
    from attractor.schedule import LogLinear
    from attractor.train.objectives import Objective

    keep_freed_memory()                              # as the trainer on a CPU
    torch.manual_seed(0)
    cfg = get_model_config(model_name)               # its own dropout, as the CLI trains it
    model = DiT(cfg, vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)   # as the trainer
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, vocab, (batch, length), generator=gen)
    head = resolve_head(head, vocab, False)
    objective = Objective("uniform", LogLinear(), vocab,
                          torch.bfloat16 if precision == "bf16" else None, False, head)
    _phases(model, opt, x0, objective, gen, 2)                             # warm-up
    phases = _phases(model, opt, x0, objective, gen, steps)
    step_s = sum(phases.values())
    with torch.profiler.profile(record_shapes=True) as prof:
        _phases(model, opt, x0, objective, gen, 1)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    split = {"output projection matmuls": 0.0, "other matmuls": 0.0, "attention": 0.0}
    flops = {"output projection matmuls": 0.0, "other matmuls": 0.0}
    for e in events:
        seconds = e.self_cpu_time_total / 1e6
        if e.key in MATMULS:
            dims = _matmul_dims(e.key, e.input_shapes)
            is_head = _is_output_projection(dims, batch * length, cfg.hidden, vocab)
            key = "output projection matmuls" if is_head else "other matmuls"
            split[key] += seconds
            flops[key] += e.count * 2.0 * math.prod(dims) if dims else 0.0
        elif "attention" in e.key:
            split["attention"] += seconds
    split["everything else"] = total - sum(split.values())
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:int(os.environ.get("TOPN", 12))]
    tokens = batch * length
    return {
        "model": model_name, "vocab": vocab, "precision": precision, "head": head, "batch": batch,
        "dropout": cfg.dropout, "length": length, "step_s": step_s, "tokens_per_s": tokens / step_s,
        "mfu_vs_bf16_peak": flops_per_token(cfg, vocab, length) * tokens / step_s / peak,
        "phases_s": phases,
        "phase_share": {k: v / step_s for k, v in phases.items()},
        "profiled_operator_s": split,
        "operator_share": {k: v / total for k, v in split.items()},
        "matmul_flops_per_s": {k: flops[k] / split[k] if split[k] else None for k in flops},
        "matmul_fraction_of_peak": {k: flops[k] / split[k] / peak if split[k] else None
                                    for k in flops},
        "top_operators": [{"op": e.key, "shapes": str(e.input_shapes)[:120], "calls": e.count,
                           "self_s": e.self_cpu_time_total / 1e6} for e in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny:4096", "tiny:50258"])
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--head", default="auto", choices=("auto", "logits", "fused", "recompute"))
    parser.add_argument("--out", default=str(RESULTS / "train_profile.json"))
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    peak = matmul_peak(dtype)
    rows = []
    for spec in args.configs:
        name, vocab = spec.split(":")
        row = profile_one(name, int(vocab), args.precision, args.batch, args.length, args.steps,
                          peak, args.head)
        rows.append(row)
        print(f"{spec} {args.precision}: {row['tokens_per_s']:.0f} tok/s, "
              f"MFU {row['mfu_vs_bf16_peak']:.1%}", flush=True)
        for k, v in row["phase_share"].items():
            print(f"  phase {k:28s} {v:6.1%}  {row['phases_s'][k]:.3f} s")
        for k, v in row["operator_share"].items():
            eff = row["matmul_fraction_of_peak"].get(k)
            extra = f"  at {eff:.0%} of the matmul peak" if eff else ""
            print(f"  ops   {k:28s} {v:6.1%}{extra}")
    peak = max(peak, matmul_peak(dtype))
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(),
                          "ld_preload": os.environ.get("LD_PRELOAD", "")},
              "matmul_peak_flops": {args.precision: peak}, "runs": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
