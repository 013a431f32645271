"""``attractor export RUN_DIR OUT``: a trained run's model as a self-contained folder."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from attractor.adapters.export import export_run
    from attractor.errors import require
    from attractor.lock import hold, output_dir

    require(Path(args.run_dir).is_dir(), f"{args.run_dir} does not exist or is not a directory")
    # OUT must hold exactly the export, so its lock file sits beside it; the run is locked too,
    # so that no training or probe rewrites its checkpoint while it is read.
    with hold(args.run_dir, "attractor export"), \
            hold(output_dir(args.out), "attractor export", beside=True):
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
