"""The output projection fused with a per-token loss: the logits formed a chunk of tokens at a time.

Every training loss of the three families is a sum over tokens of a function of that token's
logits x_n = W h_n + b. A *row kernel* gives, for a chunk of rows, each row's loss and its
gradient D_n = d loss_n / d x_n (``nelbo_rows`` in :mod:`attractor.loss_fused` for eq. (3);
:func:`crossentropy_rows` here for the masked and autoregressive losses). So the head never needs
the (N, K) logits:

    forward:   x_c = h_c W^T + b             (c: a chunk of tokens, one (c, K) buffer for all)
               loss_c, D_c = kernel(x_c)     (D per unit upstream gradient, in float32 or higher)
    backward:  with g = dL/d loss (N,):   dh = g * (D W),   dW = D^T (g * h),   db = D^T g

Two ways to get D into the backward pass:

    store      D is kept, in the product dtype (bf16 under autocast, as the logits' gradient of
               ``nn.Linear`` would be); the backward pass is the two products. One (N, K) tensor
               instead of the logits and their gradient, and each K-wide quantity made once.
    recompute  nothing with N K elements is kept; the backward pass forms x_c and D_c again
               (one more product), for when even D does not fit.

Under bf16 autocast the products run in bf16 like ``nn.Linear`` under autocast; the kernels read
each chunk in float32 and form their per-row terms in float64; dW is accumulated over chunks in
float32 or higher.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from attractor.errors import require
from attractor.softmax_rows import exp_, fast_route, shift_by_row_max

HEADS = ("auto", "logits", "fused", "recompute")
# Below this many logits per token, the logits path is as fast (the head is a small part of a
# step) and keeps its numerics; from here on the fused head is used (benchmarks/train_*.py).
AUTO_MIN_VOCAB = 1024
# Elements of the (chunk, K) logits buffer, large enough that the product keeps its speed (at
# K = 50,258 on a 2-core CPU, 4096 tokens take 0.30 s in chunks of 256 rows, 0.44 s in chunks of
# 64; whole bf16 steps were fastest with 2^25 elements, 667 rows), and the row kernels' share of
# a chunk (2^20 elements, 20 rows), small enough to stay in cache.
HEAD_CHUNK_ELEMENTS = {"cpu": 1 << 25, "cuda": 1 << 26}
KERNEL_CHUNK_ELEMENTS = 1 << 20

RowKernel = Callable[[torch.Tensor, slice, tuple, "torch.Tensor | None"], torch.Tensor]
"""kernel(x, rows, scratch, out) -> loss: x (n, K) logits of rows ``rows`` (a slice of the N
tokens; the kernel may overwrite x), scratch three (n, K) tensors of the working dtype; returns
the rows' losses (n,) float64 and writes D into ``out`` (n, K) unless ``out`` is None."""


def resolve_head(head: str, vocab: int, compiled: bool) -> str:
    """The head a config's ``head`` setting means: ``auto`` is ``logits`` under torch.compile
    or below AUTO_MIN_VOCAB logits, else ``fused``."""
    require(head in HEADS, f"head is {head!r}, not one of {', '.join(HEADS)}")
    require(not (compiled and head in ("fused", "recompute")),
            f"head {head} runs eagerly, not under torch.compile; use head logits (or auto)")
    if head != "auto":
        return head
    return "logits" if compiled or vocab < AUTO_MIN_VOCAB else "fused"


def default_chunk_tokens(vocab: int, device_type: str) -> int:
    """Tokens per chunk: HEAD_CHUNK_ELEMENTS[device] // K, at least 1."""
    return max(1, HEAD_CHUNK_ELEMENTS.get(device_type, HEAD_CHUNK_ELEMENTS["cpu"]) // vocab)


def _token_chunks(n: int, rows: int):
    for start in range(0, n, rows):
        yield slice(start, min(n, start + rows))


def _apply_kernel(kernel: RowKernel, x: torch.Tensor, rows: slice, scratch,
                  into: torch.Tensor | None) -> torch.Tensor:
    """The kernel over a chunk of logits in sub-chunks that stay in cache: the rows' losses
    (n,) float64; D written into ``into`` (n, K) unless it is None."""
    n, K = x.shape
    step = max(1, KERNEL_CHUNK_ELEMENTS // K)
    loss = torch.empty(n, dtype=torch.float64, device=x.device)
    for sub in _token_chunks(n, step):
        m = sub.stop - sub.start
        glob = slice(rows.start + sub.start, rows.start + sub.stop)
        loss[sub] = kernel(x[sub], glob, tuple(b[:m] for b in scratch),
                           None if into is None else into[sub])
    return loss


class _Workspace:
    """The (N, K) tensor for D, kept from one step to the next on the CPU: a fresh tensor that
    size is page-faulted in by whatever writes it first (0.12 s of a 2.5 s step at N = 4096,
    K = 50,258 on a 2-core CPU). It is lent to one forward pass at a time, and free again once
    that pass's backward has run or its graph is gone; a second forward pass meanwhile gets a
    fresh tensor."""

    def __init__(self):
        self.tensor, self.holder = None, None

    def take(self, shape, dtype, device, ctx) -> torch.Tensor:
        if device.type != "cpu":                       # GPU allocators keep freed blocks
            return torch.empty(shape, dtype=dtype, device=device)
        if self.holder is not None and self.holder() is not None:
            return torch.empty(shape, dtype=dtype, device=device)
        t, (n, K) = self.tensor, shape
        if t is None or t.shape[0] < n or t.shape[1] != K or t.dtype != dtype:
            self.tensor = t = None                     # the old one goes before the new comes
            t = self.tensor = torch.empty(shape, dtype=dtype, device=device)
        self.holder = weakref.ref(ctx)
        return t[:n]                    # rows vary from step to step in the masked family

    def give_back(self, ctx) -> None:
        if self.holder is not None and self.holder() is ctx:
            self.holder = None

    def release(self) -> None:
        """Free the kept tensor (a finished run's D is not kept for the next one)."""
        if self.holder is None or self.holder() is None:
            self.tensor, self.holder = None, None


_WORKSPACE = _Workspace()


def release_workspace() -> None:
    """Free the fused head's kept D (the trainer calls this when a run ends)."""
    _WORKSPACE.release()


def _chunk_buffers(N: int, K: int, rows: int, dtype, device):
    """One (rows, K) logits buffer in the product dtype and the row kernels' three scratch
    buffers of a cache-sized slice in the working dtype (float32 or higher)."""
    work = torch.promote_types(dtype, torch.float32)
    sub = min(rows, N, max(1, KERNEL_CHUNK_ELEMENTS // K))
    return (torch.empty(min(rows, N), K, dtype=dtype, device=device),
            [torch.empty(sub, K, dtype=work, device=device) for _ in range(3)])


def _forward(h, weight, bias, kernel, plan, ctx):
    """Per-token loss (N,) float64; when ``need_grad`` and storing, D (N, K) in the product
    dtype (else None); the weight in the product dtype."""
    dtype, rows, store, need_grad = plan
    N, K = h.shape[0], weight.shape[0]
    w, b = weight.to(dtype), bias.to(dtype)
    logits, scratch = _chunk_buffers(N, K, rows, dtype, h.device)
    D = _WORKSPACE.take((N, K), dtype, h.device, ctx) if need_grad and store else None
    loss = torch.empty(N, dtype=torch.float64, device=h.device)
    for sl in _token_chunks(N, rows):
        x = torch.addmm(b, h[sl].to(dtype), w.t(), out=logits[: sl.stop - sl.start])
        loss[sl] = _apply_kernel(kernel, x, sl, scratch, None if D is None else D[sl])
    return loss, D, w


def _products(D, g, hb, w):
    """dh (n, d), dW (K, d) and db (K,) of one block of rows: g * (D W), D^T (g * h) and D^T g,
    the products in D's dtype. g is split as s r with s = max |g|, so that a constant g (the
    usual mean over tokens) enters the bf16 products exactly (r = 1) and s is applied in float32
    or higher."""
    s = g.abs().amax() if g.numel() else g.new_ones(())
    s = s.clamp_min(torch.finfo(g.dtype).tiny)
    r = (g / s).to(D.dtype)
    dh = (D @ w).to(g.dtype) * g[:, None]
    # the faster products on a CPU at N = 4096, K = 50,258: in bf16 one (d + 1, K) product with
    # db as its last row (0.32 s, against 0.47 s for D^T (g h) alone); in float32 D^T (g h) and
    # D^T g apart (0.60 s; 0.94 s as one (K, d + 1) product)
    if D.dtype == torch.bfloat16:
        prod = (torch.cat([hb * r[:, None], r[:, None]], dim=1).t() @ D).t().to(g.dtype) * s
        return dh, prod[:, :-1], prod[:, -1]
    return dh, (D.t() @ (hb * r[:, None])).to(g.dtype) * s, (D.t() @ r).to(g.dtype) * s


def _backward_recompute(h, weight, bias, kernel, plan, g):
    """dh, dW, db with x_c and D_c formed again a chunk at a time; dW, db summed in float32+."""
    dtype, rows = plan[:2]
    (N, d), K = h.shape, weight.shape[0]
    work = torch.promote_types(dtype, torch.float32)
    acc = torch.promote_types(work, g.dtype)
    w, b = weight.to(dtype), bias.to(dtype)
    dh = torch.empty(N, d, dtype=acc, device=h.device)
    dW = torch.zeros(K, d, dtype=acc, device=h.device)
    db = torch.zeros(K, dtype=acc, device=h.device)
    logits, scratch = _chunk_buffers(N, K, rows, dtype, h.device)
    D = torch.empty_like(logits)
    for sl in _token_chunks(N, rows):
        n = sl.stop - sl.start
        hb = h[sl].to(dtype)
        x = torch.addmm(b, hb, w.t(), out=logits[:n])
        _apply_kernel(kernel, x, sl, scratch, D[:n])
        dh[sl], dW_c, db_c = _products(D[:n], g[sl], hb, w)
        dW.add_(dW_c)
        db.add_(db_c)
    return dh, dW, db


class _HeadLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, kernel, plan):
        with torch.autocast(device_type=h.device.type, enabled=False):
            loss, D, w = _forward(h, weight, bias, kernel, plan, ctx)
        # what the backward pass reads: for the stored D, the weight in the product dtype
        ctx.save_for_backward(h, weight if D is None else w, bias, D)
        ctx.weight_dtype = weight.dtype
        ctx.kernel, ctx.plan = kernel, plan
        return loss.to(torch.promote_types(plan[0], torch.float32))

    @staticmethod
    def backward(ctx, grad_out):
        h, weight, bias, D = ctx.saved_tensors
        with torch.autocast(device_type=h.device.type, enabled=False):
            if D is None:
                dh, dW, db = _backward_recompute(h, weight, bias, ctx.kernel, ctx.plan, grad_out)
            else:
                dh, dW, db = _products(D, grad_out, h.to(D.dtype), weight)
                _WORKSPACE.give_back(ctx)
        return (dh.to(h.dtype), dW.to(ctx.weight_dtype, memory_format=torch.contiguous_format),
                db.to(bias.dtype), None, None)


def _product_dtype(h: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype nn.Linear would compute the logits in: the autocast dtype inside an autocast
    region of h's device, else the promoted dtype of h and the weight."""
    device = h.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(h.dtype, weight.dtype)


def head_loss(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, kernel: RowKernel,
              store: bool = True, chunk_tokens: int | None = None) -> torch.Tensor:
    """The per-token loss of ``kernel`` on the logits h W^T + b, without the (N, K) logits.

    Args:
        h: (N, d) hidden states just before the output Linear (``DiT.features``, flattened).
        weight, bias: (K, d) and (K,), the output Linear's parameters.
        kernel: the loss's row kernel (:data:`RowKernel`), built for these N tokens.
        store: keep D for the backward pass (else form it again there; nothing N x K is kept).
        chunk_tokens: tokens per chunk (default :func:`default_chunk_tokens`).
    Returns:
        (N,) float32 (float64 for float64 inputs), differentiable with respect to h, weight and
        bias. Inside a bf16 autocast region the logits are bf16, as nn.Linear's.
    """
    K = weight.shape[0]
    require(h.ndim == 2 and weight.ndim == 2 and h.shape[1] == weight.shape[1],
            f"h (N, d) and weight (K, d) do not match: {tuple(h.shape)}, {tuple(weight.shape)}")
    require(tuple(bias.shape) == (K,), f"bias must have shape ({K},); got {tuple(bias.shape)}")
    rows = chunk_tokens or default_chunk_tokens(K, h.device.type)
    require(rows >= 1, f"chunk_tokens must be at least 1; got {rows}")
    # ctx.needs_input_grad does not see no_grad regions (evaluation): the value alone there
    need_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (h, weight, bias))
    plan = (_product_dtype(h, weight), rows, store, need_grad)
    return _HeadLoss.apply(h, weight, bias, kernel, plan)


def crossentropy_rows(target: torch.Tensor, weight: torch.Tensor,
                      excluded: int | None = None) -> RowKernel:
    """Row kernel of w_n (-log softmax(x_n)[target_n]) (the masked and autoregressive losses):
    D_n = w_n (softmax(x_n) - e_target). ``excluded``: a logit set to -inf first (the masked
    family's mask id, SUBS). target (N,) int64, weight (N,) float64."""

    def kernel(x, rows, scratch, out):
        if excluded is not None:
            x[:, excluded] = float("-inf")
        e_buf = out if out is not None and out.dtype == scratch[0].dtype else scratch[0]
        m = shift_by_row_max(x, e_buf)
        e = exp_(e_buf, fast_route(x, e_buf))                               # softmax = e / z
        z = e.sum(-1, keepdim=True)
        t, w = target[rows], weight[rows]
        loss = w * ((m + z.log()).squeeze(-1).double() - x.gather(-1, t[:, None])[:, 0].double())
        if out is None:
            return loss
        idx = torch.arange(e.shape[0], device=e.device)
        e.index_put_((idx, t), -z[:, 0], accumulate=True)                   # e - z e_target
        torch.mul(e, (w[:, None] / z).to(e.dtype), out=out)
        return loss

    return kernel
