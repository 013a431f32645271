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

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

import attractor
from attractor import artifacts, budget
from attractor.config import differences, to_dict
from attractor.data import Dataset, build_dataset
from attractor.device import join_process_group, keep_freed_memory, resolve_device, resolve_precision
from attractor.errors import UserError
from attractor.head_loss import release_workspace, resolve_head
from attractor.io import append_jsonl, write_json, write_jsonl
from attractor.lock import hold, output_dir
from attractor.loss import stratified_times
from attractor.model import DiT
from attractor.schedule import get_schedule
from attractor.train import checkpoint as ckpt
from attractor.train import rundir
from attractor.train.config import TrainConfig, read_run_config
from attractor.train.loop import (
    batch_indices,
    derive_seed,
    ema_decay,
    ema_update,
    evaluate_nelbo,
    learning_rate,
    step_generator,
)
from attractor.train.objectives import Objective, build_model, mask_id, model_vocab


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class TrainJob:
    """What stays fixed while a run trains."""

    cfg: TrainConfig
    run_dir: Path
    data: Dataset
    x_train: torch.Tensor              # (n, L) int64 training sequences
    m_train: torch.Tensor              # (n, L) bool positions in the loss
    device: torch.device
    dist: Distributed
    amp: torch.dtype | None            # autocast dtype of the forward pass, None for fp32
    objective: Objective               # the family's corruption and loss

    @property
    def per_rank(self) -> int:
        """Rows of each micro-batch that one process computes."""
        return self.cfg.batch_size // self.cfg.grad_accum // self.dist.world


@dataclass
class TrainState:
    """What changes from step to step."""

    model: DiT                         # the plain module (checkpoints use its names)
    net: torch.nn.Module               # what runs the forward pass: model, DDP or compiled
    optimizer: torch.optim.Optimizer
    ema: dict[str, torch.Tensor]
    step: int = 0


def _setup_distributed(device: torch.device) -> tuple[Distributed, torch.device]:
    rank, world, device = join_process_group(device)
    return Distributed(rank, world), device


def prepare_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> None:
    """Refuse to overwrite a run; on resume, refuse a config that differs from the saved one."""
    if resume:
        saved, _ = read_run_config(run_dir)
        diff = differences(cfg, saved)
        if diff:
            raise UserError(f"--resume with a config that differs from the saved one: "
                            f"{'; '.join(diff[:4])}")
    elif run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} exists and is not a directory")
    elif rundir.holds_results(run_dir):       # (a half-made start is replaced)
        raise UserError(f"{run_dir} already exists and is not empty; use --resume to continue "
                        f"that run or choose another --out")


def _write_fresh_run(job: TrainJob, train_ids: torch.Tensor) -> None:
    run_dir, data, cfg = job.run_dir, job.data, job.cfg
    rundir.write_fresh(run_dir, data.tokenizer, data.membership(train_ids), {
        "train": to_dict(cfg), "vocab_size": data.vocab_size, "pad_id": data.pad_id,
        "num_train": len(train_ids), "mask_id": mask_id(cfg.family, data.vocab_size),
        "parameters": sum(p.numel() for p in build_model(cfg.model, cfg.family,
                                                          data.vocab_size).parameters()),
        "attractor_version": attractor.__version__,
    })


def loss_mask(data: Dataset, cfg: TrainConfig) -> torch.Tensor:
    """(N, L) bool: the positions in the loss. Pads are left out unless the config trains them
    (then a generated sample learns to end in pads, as its training sequences do)."""
    if cfg.loss_on_padding:
        return torch.ones_like(data.loss_mask)
    return data.loss_mask


def _initial_state(job: TrainJob) -> TrainState:
    cfg = job.cfg
    torch.manual_seed(derive_seed(cfg.seed, "init"))    # model initialisation (same for all runs)
    model = build_model(cfg.model, cfg.family, job.data.vocab_size).to(job.device)
    # fused: one kernel over all parameters (CPU and CUDA), ~7x faster than the multi-tensor
    # implementation on the 50258 x d embedding and head here (benchmarks/train_profile.py)
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay,
                                  betas=(o.beta1, o.beta2), eps=o.eps,
                                  fused=job.device.type in ("cpu", "cuda"))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainState(model, model, optimizer, ema)


def _restore(state: TrainState, found: Path, device: torch.device) -> None:
    saved = ckpt.load_checked(found, state.model, state.optimizer)   # every tensor fits
    state.model.load_state_dict(saved.model)
    state.ema = {k: v.to(device) for k, v in saved.ema.items()}
    state.optimizer.load_state_dict(saved.optimizer)
    state.step = saved.step


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True,
          data: Dataset | None = None, cache_dir: str | Path | None = None) -> dict:
    """Train (or resume) the run in ``run_dir``; returns the summary dict.

    The process that writes (rank 0) holds the run directory's lock throughout
    (:mod:`attractor.lock`): a second writer is refused at once, naming this one.
    """
    resolve_device(cfg.device)          # a device this machine lacks: refused before the lock
    with hold(output_dir(run_dir), "attractor train"):
        return _train_locked(cfg, run_dir, resume, progress, data, cache_dir)


def _train_locked(cfg: TrainConfig, run_dir: str | Path, resume: bool, progress: bool,
                  data: Dataset | None, cache_dir: str | Path | None) -> dict:
    run_dir = Path(run_dir)
    dist, device = _setup_distributed(resolve_device(cfg.device))
    if device.type == "cpu":
        keep_freed_memory()
    if dist.main:
        prepare_run_dir(run_dir, cfg, resume)
    data = data or build_dataset(cfg.data, cache_dir=cache_dir)
    train_ids = data.train_ids(fraction=cfg.fraction, num_train=cfg.num_train)
    amp = resolve_precision(cfg.precision, device)
    head = resolve_head(cfg.head, model_vocab(cfg.family, data.vocab_size), cfg.compile)
    objective = Objective(cfg.family, get_schedule(cfg.schedule), data.vocab_size, amp,
                          cfg.compile, head)
    job = TrainJob(cfg, run_dir, data, data.sequences[train_ids], loss_mask(data, cfg)[train_ids],
                   device, dist, amp, objective)
    if (cfg.batch_size // cfg.grad_accum) % dist.world or job.per_rank == 0:
        raise UserError(f"batch size {cfg.batch_size} / accumulation {cfg.grad_accum} does not "
                        f"split over {dist.world} processes")
    budget.check_training(cfg, data.vocab_size, device, dist.world)    # before any allocation
    if (run_dir / "config.json").is_file():     # continuing: on the data it was trained on
        rundir.check_same_data(run_dir, data, train_ids)
    state = _initial_state(job)
    # Written once everything above has worked, so a failed start leaves no half-made run.
    if dist.main and not (run_dir / "config.json").is_file():
        _write_fresh_run(job, train_ids)
    found = ckpt.find_checkpoint(run_dir) if resume else None
    if found is not None:
        _restore(state, found, device)
    if state.step >= cfg.steps and (done := rundir.intact_summary(run_dir)) is not None:
        return done                     # finished: nothing to redo or rewrite
    if resume and dist.main:       # rows logged after the checkpoint (or before the first
        _truncate_metrics(run_dir / "metrics.jsonl", state.step)    # one) are about to be redone
    if dist.world > 1:
        state.net = torch.nn.parallel.DistributedDataParallel(state.model)
    if cfg.compile:                 # checkpoints keep the plain module's parameter names
        state.net = torch.compile(state.net)
    try:
        return _run_loop(job, state, progress)
    finally:
        release_workspace()             # the fused head's D is not kept past the run


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from (they will be redone).

    ``step`` 0 (no checkpoint yet) drops every row: the run starts again from its beginning.
    """
    if path.is_file():
        write_jsonl(path, [r for r in artifacts.metrics(path) if 0 < step and r["step"] <= step])


def _train_step(job: TrainJob, state: TrainState, step: int) -> tuple[float, float]:
    """One optimiser step on the global batch of ``step``; returns (loss, gradient norm)."""
    cfg, dist = job.cfg, job.dist
    for g in state.optimizer.param_groups:
        g["lr"] = learning_rate(step, cfg.optim.lr, cfg.optim.warmup)
    idx = batch_indices(len(job.x_train), cfg.batch_size, step, cfg.seed)
    times = stratified_times(cfg.batch_size, step_generator(cfg.seed, step, "t"), cfg.sampling_eps)
    x_all, m_all = job.x_train[idx], job.m_train[idx]
    denom = m_all.sum().clamp_min(1).float().to(job.device)
    # The corruption of the whole global batch is drawn at once, on every rank, so that
    # accumulation and data parallelism see exactly the z_t of one big batch.
    z_all = job.objective.corrupt(x_all, times, step_generator(cfg.seed, step, "noise"))
    torch.manual_seed(derive_seed(cfg.seed, step, "dropout", dist.rank))
    state.optimizer.zero_grad(set_to_none=True)
    micro, step_loss = cfg.batch_size // cfg.grad_accum, 0.0
    for a in range(cfg.grad_accum):
        sl = slice(a * micro + dist.rank * job.per_rank, a * micro + (dist.rank + 1) * job.per_rank)
        x0, zt, m = (v[sl].to(job.device) for v in (x_all, z_all, m_all))
        per_token = job.objective.loss(state.net, x0, zt, times[sl].to(job.device))
        loss = (per_token * m).sum() / denom * dist.world
        loss.backward()
        step_loss += float(loss.detach()) / dist.world
    grad_norm = float(torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.clip))
    state.optimizer.step()
    ema_update(state.ema, dict(state.model.state_dict()), ema_decay(step, cfg.optim.ema))
    return step_loss, grad_norm


def _run_loop(job: TrainJob, state: TrainState, progress: bool) -> dict:
    cfg, main = job.cfg, job.dist.main
    bar = tqdm(total=cfg.steps, initial=state.step, disable=not (progress and main),
               desc=f"train {job.run_dir.name}", unit="step", dynamic_ncols=True)
    tokens_per_step = cfg.batch_size * job.x_train.shape[1]
    start_step, t0 = state.step, time.perf_counter()
    last_log, window = t0, []
    state.net.train()
    while state.step < cfg.steps:
        loss, grad_norm = _train_step(job, state, state.step)
        state.step += 1
        done, last = state.step, state.step == cfg.steps
        window.append(loss)
        bar.update(1)
        if main and (done % cfg.log_every == 0 or last):
            now = time.perf_counter()
            row = {"step": done, "loss": sum(window) / len(window),
                   "lr": state.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                   "tokens_per_s": tokens_per_step * len(window) / max(now - last_log, 1e-9)}
            append_jsonl(job.run_dir / "metrics.jsonl", row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
            last_log, window = now, []
        if main and (done % cfg.eval_every == 0 or last):
            _log_eval(job, state)
        if main and (done % cfg.checkpoint_every == 0 or last):
            ckpt.save_checkpoint(job.run_dir, done, state.model.state_dict(), state.ema,
                                 state.optimizer.state_dict())
    bar.close()
    if not main:
        return {}
    if not any(r.get("split") == "eval" and r["step"] == cfg.steps
               for r in artifacts.metrics(job.run_dir / "metrics.jsonl")):
        _log_eval(job, state)           # its row was lost with a damaged metrics.jsonl
    wall = time.perf_counter() - t0
    return _write_summary(job, wall, tokens_per_step * (cfg.steps - start_step) / max(wall, 1e-9))


def _log_eval(job: TrainJob, state: TrainState) -> None:
    cfg, data = job.cfg, job.data
    ema_model = build_model(cfg.model, cfg.family, data.vocab_size).to(job.device)
    ema_model.load_state_dict(state.ema)
    n, test = cfg.eval_sequences, data.test_ids[:cfg.eval_sequences]
    fp32 = replace(job.objective, amp=None)          # evaluation in fp32, whatever trains
    row = {"step": state.step, "split": "eval",
           "train_nelbo": evaluate_nelbo(ema_model, job.x_train[:n], job.m_train[:n], cfg.seed,
                                         fp32),
           "test_nelbo": evaluate_nelbo(ema_model, data.sequences[test],
                                        loss_mask(data, cfg)[test], cfg.seed, fp32)}
    row["test_ppl_bound"] = float(torch.tensor(row["test_nelbo"]).exp())
    append_jsonl(job.run_dir / "metrics.jsonl", row)


def _write_summary(job: TrainJob, wall: float, tokens_per_s: float) -> dict:
    rows = artifacts.metrics(job.run_dir / "metrics.jsonl")
    evals = [r for r in rows if r.get("split") == "eval"]
    train_rows = [r for r in rows if "loss" in r]
    last = evals[-1] if evals else {}
    summary = {
        "steps": job.cfg.steps,
        "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
        "train_nelbo": last.get("train_nelbo"),
        "test_nelbo": last.get("test_nelbo"),
        "test_ppl_bound": last.get("test_ppl_bound"),
        "wall_s_this_session": wall,
        "tokens_per_s_this_session": tokens_per_s,
    }
    write_json(job.run_dir / "summary.json", summary)
    return summary
