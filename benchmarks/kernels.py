"""Micro-benchmarks behind the implementation choices of the training step on a CPU.

Times, on this machine and in one run: bf16 matrix products of the model's shapes against the
2048^3 product used as the peak; AdamW multi-tensor vs fused on `tiny` at K = 50258; attention
(bf16, forward + backward) by torch's fused kernel vs written out in float32 at L = 128 and 256;
adding one entry per row to a bf16 (4096, 50258) tensor by scatter_add_ vs index_put_. Writes
benchmarks/results/kernels.json.

    python benchmarks/kernels.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).parent / "results"


def seconds(fn, reps: int = 4, warmup: int = 2) -> float:
    """Median wall time of ``fn()``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_rates() -> dict:
    """GFLOP/s of bf16 (m, k) @ (k, n) products: the peak's square and the model's shapes."""
    out = {}
    for m, k, n in [(2048, 2048, 2048), (4096, 256, 1024), (4096, 1024, 256), (4096, 256, 768),
                    (4096, 256, 50258), (4096, 4096, 4096)]:
        a, b = torch.randn(m, k).bfloat16(), torch.randn(k, n).bfloat16()
        out[f"{m}x{k}x{n}"] = 2 * m * k * n / seconds(lambda: a @ b) / 1e9
    return out


def adamw() -> dict:
    from attractor.model import DiT, get_model_config

    model = DiT(get_model_config("tiny"), 50258)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    out = {}
    for name, kw in (("multi_tensor", {}), ("fused", {"fused": True})):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **kw)
        out[name] = seconds(opt.step)
    return out


def attention() -> dict:
    from attractor.model.dit import attention as explicit

    out = {}
    for L in (128, 256):
        qkv = [torch.randn(32, 8, L, 32).bfloat16().requires_grad_() for _ in range(3)]
        for name, fn in (("fused_kernel", F.scaled_dot_product_attention),
                         ("explicit_float32", _force_explicit(explicit))):
            out[f"L{L}_{name}"] = seconds(lambda fn=fn: fn(*qkv).float().sum().backward())
    return out


def _force_explicit(explicit):
    """The explicit path of ``attention`` at any length."""
    import attractor.model.dit as dit

    def call(q, k, v):
        saved = dit.EXPLICIT_ATTENTION_MAX_LENGTH
        dit.EXPLICIT_ATTENTION_MAX_LENGTH = q.shape[-2]
        try:
            return explicit(q, k, v)
        finally:
            dit.EXPLICIT_ATTENTION_MAX_LENGTH = saved
    return call


def one_hot_add() -> dict:
    n, K = 4096, 50258
    grad = torch.zeros(n, K, dtype=torch.bfloat16)
    idx = torch.randint(0, K, (n,))
    val = torch.randn(n).bfloat16()
    rows = torch.arange(n)
    return {"scatter_add_": seconds(lambda: grad.scatter_add_(-1, idx[:, None], val[:, None])),
            "index_put_": seconds(lambda: grad.index_put_((rows, idx), val, accumulate=True))}


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "threads": torch.get_num_threads()},
              "bf16_matmul_gflops": matmul_rates(), "adamw_step_s": adamw(),
              "attention_fwd_bwd_s": attention(), "one_hot_add_s": one_hot_add()}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "kernels.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
