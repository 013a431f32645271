"""``attractor train --out RUN_DIR``: train one UDDM on a fraction of a corpus.

Options left out take the defaults of the dataclass configs, or, with ``--resume``, the values
saved in RUN_DIR/config.json; an option given with ``--resume`` must equal the saved value.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path

from attractor.commands.args import finite_float, nonnegative_int

# (flag, dest, type, where, help): where is "data", "model", "optim" or "train".
OPTIONS = [
    ("--corpus", "corpus", str, "data", "synthetic | text:PATH | hf:NAME"),
    ("--tokenizer", "tokenizer", str, "data", "auto | gpt2 | word | bpe:N"),
    ("--block-length", "block_length", int, "data", "sequence length L"),
    ("--mode", "mode", str, "data", "pad (one sentence per sequence) | wrap (packed)"),
    ("--corpus-size", "corpus_size", int, "data", "synthetic: distinct sentences; else max read"),
    ("--test-size", "test_size", int, "data", "held-out test sequences"),
    ("--data-seed", "seed", nonnegative_int, "data", "seed of the corpus, split and permutation"),
    ("--dropout", "dropout", finite_float, "model", "dropout of the DiT"),
    ("--lr", "lr", finite_float, "optim", "peak learning rate"),
    ("--warmup", "warmup", int, "optim", "linear warm-up steps"),
    ("--ema", "ema", finite_float, "optim", "EMA decay of the evaluation weights"),
    ("--clip", "clip", finite_float, "optim", "gradient-norm clip"),
    ("--weight-decay", "weight_decay", finite_float, "optim", "AdamW weight decay"),
    ("--fraction", "fraction", finite_float, "train",
     "fraction of the training pool, in (0, 1] (default 1 unless --num-train)"),
    ("--num-train", "num_train", int, "train", "number of training sequences (instead)"),
    ("--steps", "steps", int, "train", "optimiser steps"),
    ("--batch-size", "batch_size", int, "train", "global batch size"),
    ("--grad-accum", "grad_accum", int, "train", "gradient accumulation micro-steps"),
    ("--seed", "seed", nonnegative_int, "train", "seed of initialisation, data order and noise"),
    ("--precision", "precision", str, "train", "auto | fp32 | bf16 (autocast; loss in fp32)"),
    ("--device", "device", str, "train", "auto | cpu | cuda | cuda:N"),
    ("--schedule", "schedule", str, "train", "loglinear | cosine"),
    ("--eval-every", "eval_every", int, "train", "steps between validation NELBOs"),
    ("--eval-sequences", "eval_sequences", int, "train", "sequences per validation NELBO"),
    ("--checkpoint-every", "checkpoint_every", int, "train", "steps between checkpoints"),
    ("--log-every", "log_every", int, "train", "steps between metrics rows"),
]


def _given(args: argparse.Namespace) -> dict[str, dict]:
    out: dict[str, dict] = {"data": {}, "model": {}, "optim": {}, "train": {}}
    for where, dest in [(w, d) for _, d, _, w, _ in OPTIONS] + [("train", "loss_on_padding"),
                                                                   ("train", "compile")]:
        value = getattr(args, f"{where}_{dest}")
        if value is not None:
            out[where][dest] = value
    return out


def config_from_args(args: argparse.Namespace):
    from attractor.data import DataConfig
    from attractor.errors import UserError
    from attractor.train.config import config_differences, make_config
    from attractor.train.trainer import load_config

    given = _given(args)
    run_dir = Path(args.out)
    if args.resume:
        saved = load_config(run_dir)
        merged = asdict(saved)
        for where in ("data", "model", "optim"):
            merged[where].update(given[where])
        merged.update(given["train"])
        if args.model is not None:
            merged["model_name"] = args.model
        diff = config_differences(merged, asdict(saved))
        if diff:
            raise UserError(f"--resume with options that differ from the saved config: "
                            f"{'; '.join(diff[:4])}")
        return saved
    if given["train"].get("fraction") is None and given["train"].get("num_train") is None:
        given["train"]["fraction"] = 1.0
    data = replace(DataConfig(), **given["data"])
    return make_config(args.model or "nano", model_overrides=given["model"],
                       optim_overrides=given["optim"], data=data, **given["train"])


def run(args: argparse.Namespace) -> int:
    from attractor.train.trainer import train

    cfg = config_from_args(args)
    summary = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                    cache_dir=args.cache_dir)
    if summary:
        train_nelbo, test_nelbo = summary.get("train_nelbo"), summary.get("test_nelbo")
        if train_nelbo is None or test_nelbo is None:   # written as null: the loss diverged
            print(f"run: {args.out}  the loss is not finite (diverged); try a smaller --lr",
                  file=sys.stderr)
            return 1
        print(f"run: {args.out}  train NELBO {train_nelbo:.4f}  test NELBO {test_nelbo:.4f} "
              "nats/token")
    return 0


@lru_cache(maxsize=1)
def _nano_defaults():
    from attractor.train.config import make_config

    return make_config("nano", fraction=1.0)


def _default_of(where: str, dest: str):
    """The default of an option, for --help only (building the config imports torch)."""
    cfg = _nano_defaults()
    holder = {"data": cfg.data, "model": cfg.model, "optim": cfg.optim, "train": cfg}[where]
    return lambda: getattr(holder, dest)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a UDDM on a fraction of a corpus",
        description="Train one UDDM. Defaults shown are those of --model nano; the paper's "
                    "configs (tiny, small, medium) default to Duo's LM1B recipe (lr 3e-4, "
                    "warm-up 2500, EMA 0.9999).")
    p.add_argument("--out", required=True, help="run directory to create (or resume)")
    p.add_argument("--model", default=None,
                   help="nano | micro | tiny | small | medium (default nano)")
    for flag, dest, typ, where, text in OPTIONS:
        action = p.add_argument(flag, dest=f"{where}_{dest}", type=typ, default=None, help=text,
                                metavar=flag[2:].upper().replace("-", "_"))
        if dest not in ("fraction", "num_train"):
            action.default_from = lambda where=where, dest=dest: _default_of(where, dest)()
    p.add_argument("--loss-on-padding", dest="train_loss_on_padding", action="store_const",
                   const=True, default=None, help="train the pad positions too (Duo: not)")
    p.add_argument("--compile", dest="train_compile", action="store_const", const=True,
                   default=None, help="torch.compile the denoiser")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--cache-dir", default=None, help="cache of tokenised corpora")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
