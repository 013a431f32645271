"""``attractor info``: versions, the device, and the named model configurations."""

from __future__ import annotations

import argparse
import platform

from attractor.commands.args import positive_int


def run(args: argparse.Namespace) -> int:
    import torch

    import attractor

    print(f"attractor {attractor.__version__}  python {platform.python_version()}  "
          f"torch {torch.__version__}")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    from attractor.allocator import active

    print(f"device: {device}  threads: {torch.get_num_threads()}  allocator: {active()}")
    try:
        from attractor.model.configs import MODEL_CONFIGS, count_parameters
    except ImportError:
        return 0
    vocab = args.vocab
    print(f"model configs (K = {vocab}):")
    for name, cfg in MODEL_CONFIGS.items():
        total = count_parameters(cfg, vocab)
        print(f"  {name:8s} d={cfg.hidden:5d} blocks={cfg.blocks:3d} heads={cfg.heads:3d} "
              f"params={total / 1e6:8.2f}M")
    return 0


def _vocab(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"a vocabulary needs at least 2 tokens, got {text!r}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="versions, device and the named model configs")
    p.add_argument("--vocab", type=_vocab, default=50258, help="vocabulary size K for param counts")
    p.set_defaults(func=run)
