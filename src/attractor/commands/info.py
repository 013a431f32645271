"""``attractor info``: versions, the device, and the named model configurations."""

from __future__ import annotations

import argparse
import platform


def run(args: argparse.Namespace) -> int:
    import torch

    import attractor
    from attractor.errors import require
    from attractor.model.configs import MODEL_CONFIGS, count_parameters
    from attractor.train.objectives import FAMILIES, model_vocab

    require(args.vocab >= 2, f"--vocab needs at least 2 tokens, got {args.vocab}")
    print(f"attractor {attractor.__version__}  python {platform.python_version()}  "
          f"torch {torch.__version__}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}  threads: {torch.get_num_threads()}")
    print(f"model configs (K = {args.vocab}; parameters per family: the masked model has one "
          "more id, the mask; the autoregressive one the same weights, causal):")
    for name, cfg in MODEL_CONFIGS.items():
        counts = "  ".join(f"{f}={count_parameters(cfg, model_vocab(f, args.vocab)) / 1e6:.2f}M"
                           for f in FAMILIES)
        print(f"  {name:8s} d={cfg.hidden:5d} blocks={cfg.blocks:3d} heads={cfg.heads:3d}  "
              f"{counts}")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.options import parser_for

    p.add_argument("--vocab", type=parser_for(int), default=50258,
                   help="vocabulary size K for parameter counts (default 50258)")
    p.set_defaults(func=run)
