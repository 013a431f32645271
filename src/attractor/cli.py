"""The ``attractor`` command line: a thin layer over the library.

Each subcommand lives beside the code it drives, in a module that exposes
``add_parser(subparsers)``; the parser it adds sets ``func`` to a callable taking the parsed
arguments. This file only assembles them and turns :class:`~attractor.errors.UserError` into a
one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from attractor.allocator import maybe_reexec
from attractor.errors import UserError

# One module per subcommand family, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "attractor.commands.demo",
    "attractor.commands.train",
    "attractor.commands.sweep",
    "attractor.commands.probe",
    "attractor.commands.report",
    "attractor.commands.info",
    "attractor.commands.am",
    "attractor.commands.dense",
)


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


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default X)" to every option's help that does not state its default already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        # default_from: a callable giving the effective default, evaluated only for --help
        default = getattr(action, "default_from", lambda: action.default)()
        if ("default" in text or not action.option_strings or default is None
                or isinstance(default, bool) or default is argparse.SUPPRESS):
            return text
        if isinstance(default, (tuple, list)):
            default = ",".join(str(v) for v in default)
        return f"{text} (default {str(default).replace('%', '%%')})".strip()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) so bad input reads like every other error."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="attractor",
        description="Memorisation vs generalisation in uniform-state discrete diffusion models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:                    # the console script: set up the allocator first
        try:
            maybe_reexec(sys.argv[1:])
        except UserError as err:
            print(f"attractor: error: {err}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        result = args.func(args)
    except UserError as err:
        print(f"attractor: error: {err}", file=sys.stderr)
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
    return int(result or 0)
