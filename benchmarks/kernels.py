"""Micro-benchmarks behind the implementation choices of the training step on a CPU.

Times, on this machine and in one run: bf16 matrix products of the model's shapes against the
2048^3 product used as the peak; AdamW multi-tensor vs fused on `tiny` at K = 50258; rotary
attention (bf16, forward + backward) by torch's fused kernel, written out as a float32
composite and as one autograd function with FlashAttention's precision, at L = 128 and 256, with
the batched products of attention in float32 and bf16 and the error of each route against the
float64 truth of its bf16 inputs; the GELU's tanh and erf forms; adding one entry per row to a
bf16 (4096, 50258) tensor by scatter_add_ vs index_put_. Writes benchmarks/results/kernels.json.

    python benchmarks/kernels.py
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path

import torch

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
    """Rotary attention of one `tiny` block from its packed (32, L, 3 x 256) bf16 projection,
    forward + backward, by the three routes of attractor.model.attention: torch's fused kernel,
    the float32 composite (what torch.compile traces) and the autograd function (eager)."""
    from attractor.model import attention as attn

    out = {}
    for L in (128, 256):
        qkv = torch.randn(32, L, 3 * 256).bfloat16().requires_grad_()
        grad = torch.randn(32, L, 256).bfloat16()
        tables = attn.rotary_tables(L, 32, "cpu")
        for name, limit, compiling in (("fused_kernel", 0, False),
                                       ("explicit_float32", L, True),
                                       ("explicit_function", L, False)):
            with _route(attn, limit, compiling):
                out[f"L{L}_{name}"] = seconds(
                    lambda: attn.rotary_attention(qkv, 8, tables).backward(grad))
    return out


def attention_products() -> dict:
    """Seconds of one batched product of `tiny`'s attention at batch 32, L = 128 (256 heads):
    scores-shaped (L x hd by hd x L) and value-shaped (L x L by L x hd), float32 and bf16."""
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(256, 128, 32).to(dtype), torch.randn(256, 128, 128).to(dtype)
        name = str(dtype).removeprefix("torch.")
        out[f"scores_{name}"] = seconds(lambda: torch.bmm(a, a.transpose(1, 2)))
        out[f"values_{name}"] = seconds(lambda: torch.bmm(b, a))
    return out


def attention_accuracy() -> dict:
    """Relative (Frobenius) error of the output and of dq, dk, dv of each route against the
    float64 truth of the same bf16 inputs (the same attention computed in float64): 4 sequences
    of L = 128, 8 heads of 32, seeded."""
    from attractor.model import attention as attn

    gen = torch.Generator().manual_seed(0)
    qkv = (torch.randn(4, 128, 768, generator=gen) * 1.5).bfloat16()
    grad = torch.randn(4, 128, 256, generator=gen).bfloat16()
    tables = attn.rotary_tables(128, 32, "cpu")

    def run(x, rot, g):
        x = x.clone().requires_grad_()
        out = attn.rotary_attention(x, 8, rot)
        out.backward(g)
        return [out.detach()] + list(x.grad.view(4, 128, 3, 256).unbind(2))

    truth = run(qkv.double(), tuple(t.double() for t in tables), grad.double())
    out = {}
    for name, limit, compiling in (("fused_kernel", 0, False), ("explicit_float32", 128, True),
                                   ("explicit_function", 128, False)):
        with _route(attn, limit, compiling):
            got = run(qkv, tables, grad)
        out[name] = {k: float((a.double() - b).norm() / b.norm())
                     for k, a, b in zip(("out", "dq", "dk", "dv"), got, truth, strict=True)}
    return out


@contextlib.contextmanager
def _route(attn, limit: int, compiling: bool):
    """rotary_attention's route: explicit up to length ``limit``, the composite if ``compiling``."""
    saved = attn.EXPLICIT_ATTENTION_MAX_LENGTH, torch.compiler.is_compiling
    attn.EXPLICIT_ATTENTION_MAX_LENGTH = limit
    torch.compiler.is_compiling = lambda: compiling
    try:
        yield
    finally:
        attn.EXPLICIT_ATTENTION_MAX_LENGTH, torch.compiler.is_compiling = saved


def gelu() -> dict:
    """Forward and backward of the blocks' GELU on `tiny`'s (32, 128, 1024) bf16 activation:
    the tanh approximation (the DiT's, as Duo's) and the erf form."""
    x = torch.randn(32, 128, 1024).bfloat16()
    grad = torch.randn_like(x)
    out = {}
    for form in ("tanh", "none"):
        out[f"{form}_forward"] = seconds(lambda: torch.nn.functional.gelu(x, approximate=form))
        out[f"{form}_backward"] = seconds(
            lambda: torch.ops.aten.gelu_backward(grad, x, approximate=form))
    return out


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
              "attention_fwd_bwd_s": attention(), "attention_products_s": attention_products(),
              "attention_accuracy": attention_accuracy(), "gelu_s": gelu(),
              "one_hot_add_s": one_hot_add()}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "kernels.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
