"""The ``attractor`` command line: a thin layer over the library.

Each subcommand lives in a module of :mod:`attractor.commands` that exposes
``configure(parser)``; it adds its options (most of them made from its config by
:mod:`attractor.options`) and sets ``func``, a callable taking the parsed arguments. Only the
chosen subcommand's module is imported. This file assembles them and turns errors into one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from attractor.config import ConfigError
from attractor.errors import UserError

# name: (module, one-line help), in the order ``--help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("attractor.commands.demo", "a CPU-sized sweep on the synthetic corpus, with its "
             "report"),
    "train": ("attractor.commands.train", "train a UDDM on a fraction of a corpus"),
    "sweep": ("attractor.commands.sweep", "train and probe a grid of model configs x training "
              "sizes x seeds"),
    "probe": ("attractor.commands.probe", "token recovery, conditional entropy and generation "
              "probes of a trained run or any diffusion LM (--model)"),
    "export": ("attractor.commands.export", "write a trained run's model as a self-contained "
               "folder that --model opens"),
    "report": ("attractor.commands.report", "render the HTML report of a results directory"),
    "info": ("attractor.commands.info", "versions, device and the named model configs"),
    "am": ("attractor.commands.am", "binary associative memory: capacity and generalization "
           "sweeps"),
    "dense": ("attractor.commands.dense", "continuous diffusion as a Dense Associative Memory"),
}

# What to do after Ctrl-C, per command: finished work is kept and the rest resumes.
RESUME_HINTS = {
    "train": "; continue with the same command and --resume",
    "sweep": "; run the same command again to continue (finished runs and probes are kept)",
    "demo": "; run the same command again to continue (finished runs and probes are kept)",
}


def _resume_hint(args: argparse.Namespace) -> str:
    """How to continue after Ctrl-C, where there is something to continue."""
    out = getattr(args, "out", None)
    if args.command == "train" and not (out and (Path(out) / "config.json").is_file()):
        return ""                       # stopped before the run existed: nothing to resume
    return RESUME_HINTS.get(args.command, "")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) so bad input reads like every other error."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser, with the options of the command named in ``argv`` (others only listed)."""
    parser = Parser(prog="attractor", description="Is a diffusion language model memorising "
                    "its training data or generalising? Basins of attraction and conditional "
                    "entropy of uniform-state discrete diffusion models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, text) in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == chosen:
            importlib.import_module(module).configure(p)
    return parser


def _message(err: Exception, args: argparse.Namespace) -> str:
    options = getattr(args, "config_options", None)
    if isinstance(err, ConfigError) and options is not None:
        return options.describe(err)
    return str(err)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"attractor: error: {_message(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nattractor: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:             # output piped into e.g. head: not an error
        sys.stderr.close()
        return 0
    except OSError as err:              # a path the system refused: say which, in one line
        where = f": {err.filename}" if err.filename else ""
        print(f"attractor: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
