"""``attractor export RUN_DIR OUT``: a trained run's model as a self-contained folder."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from attractor.adapters.export import export_run

    path = export_run(args.run_dir, args.out, args.overwrite)
    print(f"exported: {path.parent}  (probe it with: attractor probe entropy --model "
          f"{path.parent} --members ... --nonmembers ... --out DIR)")
    return 0


def configure(p: argparse.ArgumentParser) -> None:
    from attractor.options import add_common

    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by attractor train")
    p.add_argument("out", metavar="OUT", help="the folder to write (new or empty)")
    add_common(p, "overwrite")
    p.set_defaults(func=run)
