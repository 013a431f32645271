"""Train a UDDM on a fraction of a corpus into a run directory.

RUN_DIR/
    config.json       the resolved TrainConfig (+ vocabulary size, parameter count)
    tokenizer.json    the tokenizer (HF ``tokenizers`` format)
    membership.json   exact train and test sequence ids, and the fingerprint of the data pool
    metrics.jsonl     training loss, learning rate, throughput; evaluation NELBOs
    checkpoint/       see attractor.train.checkpoint
    summary.json      written last: the run is finished

Runs unchanged under ``torchrun --nproc_per_node N`` (DistributedDataParallel): every rank draws
the same global batch and diffusion times and takes its slice, so the stratified sampling covers
the global batch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attractor.data import Dataset, build_dataset
from attractor.errors import UserError
from attractor.forward import q_xt
from attractor.io import append_jsonl, make_dir, read_json, read_jsonl, write_json, write_jsonl
from attractor.loss import stratified_times
from attractor.model import DiT, count_parameters
from attractor.schedule import get_schedule
from attractor.train import checkpoint as ckpt
from attractor.train.config import TrainConfig, config_differences, config_from_dict
from attractor.train.loop import (
    batch_indices,
    derive_seed,
    ema_decay,
    ema_update,
    evaluate_nelbo,
    learning_rate,
    loss_terms,
    step_generator,
)


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast dtype, or None for fp32. ``auto`` picks bf16 where the hardware has it."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):
        return None


def _setup_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(), device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, world), device


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    """Refuse to overwrite a run; on resume, refuse a config that differs from the saved one."""
    saved = run_dir / "config.json"
    if resume:
        if not saved.is_file():
            raise UserError(f"cannot resume: {run_dir} has no config.json (not a run directory)")
        old = load_config(run_dir).to_dict()
        diff = config_differences(cfg.to_dict(), old)
        if diff:
            raise UserError(f"--resume with a config that differs from the saved one: "
                            f"{'; '.join(diff[:4])}")
    elif run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory")
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir} already exists and is not empty; use --resume to continue "
                        f"that run or choose another --out")


def load_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.json)")
    saved = read_json(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("train"), dict):
        raise UserError(f"{run_dir} is not a run directory ({path} holds no training config)")
    try:
        cfg = config_from_dict(saved["train"])
        cfg.validate()
    except (TypeError, ValueError, KeyError, AttributeError) as err:    # UserError included
        raise UserError(f"{path} holds a damaged training config ({err})") from None
    if not isinstance(saved.get("vocab_size"), int):
        raise UserError(f"{path} is damaged: it records no vocabulary size")
    return cfg


def _write_fresh_run(run_dir: Path, cfg: TrainConfig, data: Dataset, train_ids) -> None:
    make_dir(run_dir)
    try:
        data.tokenizer.save(str(run_dir / "tokenizer.json"))
    except Exception as err:            # the tokenizers library raises a plain Exception
        raise UserError(f"cannot write {run_dir / 'tokenizer.json'}: {err}") from None
    write_json(run_dir / "membership.json", data.membership(train_ids))
    write_json(run_dir / "config.json", {
        "train": cfg.to_dict(), "vocab_size": data.vocab_size, "pad_id": data.pad_id,
        "num_train": len(train_ids), "parameters": count_parameters(cfg.model, data.vocab_size),
        "attractor_version": __import__("attractor").__version__,
    })


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          data: Dataset | None = None, cache_dir: str | Path | None = None) -> dict:
    """Train (or resume) the run in ``run_dir``; returns the summary dict."""
    cfg.validate()
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    dist_info, device = _setup_distributed(device)
    if dist_info.main:
        prepare_run_dir(run_dir, cfg, resume)
    data = data or build_dataset(cfg.data, cache_dir=cache_dir)
    train_ids = data.train_ids(fraction=cfg.fraction, num_train=cfg.num_train)
    x_train, m_train = data.sequences[train_ids], loss_mask(data, cfg)[train_ids]

    torch.manual_seed(derive_seed(cfg.seed, "init"))    # model initialisation (same for all runs)
    model = DiT(cfg.model, data.vocab_size).to(device)
    # fused: one kernel over all parameters (CPU and CUDA), ~7x faster than the multi-tensor
    # implementation on the 50258 x d embedding and head here (benchmarks/train_profile.py)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(cfg.optim.beta1, cfg.optim.beta2), eps=cfg.optim.eps,
                                  fused=device.type in ("cpu", "cuda"))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # Written once everything above has worked, so a failed start leaves no half-made run.
    if dist_info.main and not (run_dir / "config.json").is_file():
        _write_fresh_run(run_dir, cfg, data, train_ids)
    start = 0
    found = ckpt.find_checkpoint(run_dir) if resume else None
    if found is not None:
        model.load_state_dict(ckpt.load_weights(found, "model"))
        ema = {k: v.to(device) for k, v in ckpt.load_weights(found, "ema").items()}
        state = ckpt.load_state(found)
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    if start >= cfg.steps and (run_dir / "summary.json").is_file():
        return read_json(run_dir / "summary.json")      # finished: nothing to redo or rewrite
    if resume and dist_info.main:       # rows logged after the checkpoint (or before the first
        _truncate_metrics(run_dir / "metrics.jsonl", start)     # one) are about to be redone

    net = model
    if dist_info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.compile:                 # checkpoints keep the plain module's parameter names
        net = torch.compile(net)
    return _run_loop(cfg, run_dir, net, model, optimizer, ema, start, data, x_train, m_train,
                     device, dist_info, progress)


def loss_mask(data: Dataset, cfg: TrainConfig) -> torch.Tensor:
    """(N, L) bool: the positions in the loss. Pads are left out unless the config trains them
    (then a generated sample learns to end in pads, as its training sequences do)."""
    if cfg.loss_on_padding:
        return torch.ones_like(data.loss_mask)
    return data.loss_mask


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from (they will be redone).

    ``step`` 0 (no checkpoint yet) drops every row: the run starts again from its beginning.
    """
    if path.is_file():
        write_jsonl(path, [r for r in read_jsonl(path) if 0 < step and r.get("step", 0) <= step])


def _run_loop(cfg, run_dir, net, model, optimizer, ema, start, data, x_train, m_train, device,
              dist_info, progress) -> dict:
    schedule = get_schedule(cfg.schedule)
    amp = resolve_precision(cfg.precision, device)
    micro = cfg.batch_size // cfg.grad_accum
    per_rank = micro // dist_info.world if micro % dist_info.world == 0 else None
    if per_rank is None or per_rank == 0:
        raise UserError(f"batch size {cfg.batch_size} / accumulation {cfg.grad_accum} does not "
                        f"split over {dist_info.world} processes")
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and dist_info.main),
               desc=f"train {run_dir.name}", unit="step", dynamic_ncols=True)
    tokens_per_step = cfg.batch_size * x_train.shape[1]
    t0, last_log, window_loss = time.perf_counter(), time.perf_counter(), []
    net.train()
    for step in range(start, cfg.steps):
        for g in optimizer.param_groups:
            g["lr"] = learning_rate(step, cfg.optim.lr, cfg.optim.warmup)
        idx = batch_indices(len(x_train), cfg.batch_size, step, cfg.seed)
        times = stratified_times(cfg.batch_size, step_generator(cfg.seed, step, "t"),
                                 cfg.sampling_eps)
        x_all, m_all = x_train[idx], m_train[idx]
        denom = m_all.sum().clamp_min(1).float()
        # The corruption of the whole global batch is drawn at once, on every rank, so that
        # accumulation and data parallelism see exactly the z_t of one big batch.
        z_all = q_xt(x_all, schedule.alpha(times), model.vocab_size,
                     step_generator(cfg.seed, step, "noise"))
        torch.manual_seed(derive_seed(cfg.seed, step, "dropout", dist_info.rank))
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for a in range(cfg.grad_accum):
            lo = a * micro + dist_info.rank * per_rank
            sl = slice(lo, lo + per_rank)
            x0, zt, m = x_all[sl].to(device), z_all[sl].to(device), m_all[sl].to(device)
            per_token = loss_terms(net, x0, zt, times[sl].to(device), schedule, amp,
                                   compiled=cfg.compile)
            loss = (per_token * m).sum() / denom.to(device) * dist_info.world
            loss.backward()
            step_loss += float(loss.detach()) / dist_info.world
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip))
        optimizer.step()
        ema_update(ema, dict(model.state_dict()), ema_decay(step, cfg.optim.ema))
        done = step + 1
        window_loss.append(step_loss)
        bar.update(1)
        if dist_info.main and (done % cfg.log_every == 0 or done == cfg.steps):
            now = time.perf_counter()
            tps = tokens_per_step * len(window_loss) / max(now - last_log, 1e-9)
            row = {"step": done, "loss": sum(window_loss) / len(window_loss),
                   "lr": optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                   "tokens_per_s": tps}
            append_jsonl(run_dir / "metrics.jsonl", row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{tps:.0f}")
            last_log, window_loss = now, []
        if dist_info.main and (done % cfg.eval_every == 0 or done == cfg.steps):
            _log_eval(cfg, run_dir, model, ema, data, x_train, m_train, done, amp)
        if dist_info.main and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            ckpt.save_checkpoint(run_dir, done, model.state_dict(), ema, optimizer.state_dict(),
                                 torch.get_rng_state())
    bar.close()
    if not dist_info.main:
        return {}
    return _write_summary(cfg, run_dir, time.perf_counter() - t0, start, tokens_per_step)


def _ema_model(model, ema):
    """A copy of ``model`` carrying the EMA weights."""
    clone = DiT(model.cfg, model.vocab_size).to(next(model.parameters()).device)
    clone.load_state_dict(ema)
    return clone


def _log_eval(cfg, run_dir, model, ema, data, x_train, m_train, step, amp) -> None:
    ema_model = _ema_model(model, ema)
    n = cfg.eval_sequences
    test = data.test_ids[:n]
    row = {"step": step, "split": "eval",
           "train_nelbo": evaluate_nelbo(ema_model, x_train[:n], m_train[:n], cfg.seed,
                                         schedule=get_schedule(cfg.schedule), amp_dtype=amp),
           "test_nelbo": evaluate_nelbo(ema_model, data.sequences[test], loss_mask(data, cfg)[test],
                                        cfg.seed, schedule=get_schedule(cfg.schedule),
                                        amp_dtype=amp)}
    row["test_ppl_bound"] = float(torch.tensor(row["test_nelbo"]).exp())
    append_jsonl(run_dir / "metrics.jsonl", row)


def _write_summary(cfg, run_dir, wall, start, tokens_per_step) -> dict:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    evals = [r for r in rows if r.get("split") == "eval"]
    train_rows = [r for r in rows if "loss" in r]
    summary = {
        "steps": cfg.steps,
        "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
        "train_nelbo": evals[-1]["train_nelbo"] if evals else None,
        "test_nelbo": evals[-1]["test_nelbo"] if evals else None,
        "test_ppl_bound": evals[-1]["test_ppl_bound"] if evals else None,
        "wall_s_this_session": wall,
        "tokens_per_s_this_session": tokens_per_step * (cfg.steps - start) / max(wall, 1e-9),
    }
    write_json(run_dir / "summary.json", summary)
    return summary
