"""Command-line options made from configs: every default and help text comes from the config.

:func:`add_config_options` adds, for each leaf of a config tree (:func:`attractor.config.leaves`):

    --leaf-name      sets every leaf of that name: ``--bootstrap 500`` sets it for every probe
                     and the analysis of a sweep, ``--block-length 64`` sets ``data.block_length``
    --dotted.path    sets one leaf only (``--probes.entropy.num-sequences 512``); not listed in
                     --help, which says that it exists

and returns :class:`ConfigOptions`, which turns parsed arguments into the nested changes that
:func:`attractor.config.override` applies, and names the option behind a config error.
"""

from __future__ import annotations

import argparse
import math
import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from attractor.config import (
    ConfigError,
    Leaf,
    _optional,
    leaves,
    nest,
    override,
    read_config_file,
    type_name,
)
from attractor.errors import UserError

DOTTED_NOTE = ("Every setting can also be given by its dotted path, e.g. --data.block-length, "
               "to set one of several settings that share a name.")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _whole(text: str) -> int:
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return int(text)                       # exact, however large
    value = _number(text)                      # 1e4 and 100.0 are whole; 8.7 is not
    if value != int(value) or abs(value) >= 2**53:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def parser_for(tp: Any):
    """argparse ``type=`` for a field type: numbers, text, comma lists, ``none`` for optional."""
    inner, optional = _optional(tp)
    if typing.get_origin(inner) is tuple:
        item = parser_for(typing.get_args(inner)[0])

        def parse(text: str):
            parts = [p.strip() for p in text.split(",")]
            if any(not p for p in parts):
                raise argparse.ArgumentTypeError(
                    f"expected {type_name(inner)} with no empty item, got {text!r}")
            return tuple(item(p) for p in parts)
    else:
        parse = {int: _whole, float: _number}.get(inner, str)
    if not optional:
        return parse
    return lambda text: None if text.strip().lower() == "none" else parse(text)


def _metavar(tp: Any) -> str:
    inner = _optional(tp)[0]
    if typing.get_origin(inner) is tuple:
        return "LIST"
    return {int: "N", float: "X"}.get(inner, "TEXT")


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(_shown(v) for v in value)
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _help(members: list[Leaf]) -> str:
    values = {_shown(m.value) for m in members}
    if len(values) == 1:
        default = f"default {values.pop()}"
    else:
        default = "defaults " + "; ".join(f"{m.path} {_shown(m.value)}" for m in members)
    return f"{members[0].help} ({default})".replace("%", "%%")


@dataclass
class ConfigOptions:
    """The options one parser got from a config tree; see the module docstring."""

    groups: dict[str, list[Leaf]]           # bare flag -> the leaves it sets

    def changes(self, args: argparse.Namespace) -> dict[str, Any]:
        """Nested changes for the options given on the command line (dotted ones last)."""
        flat: dict[str, Any] = {}
        for flag, members in self.groups.items():
            value = getattr(args, f"flag:{flag}", None)
            if value is not None:
                flat.update({m.path: value for m in members})
        for members in self.groups.values():
            for m in members:
                value = getattr(args, f"path:{m.path}", None)
                if value is not None:
                    flat[m.path] = value
        return nest(flat)

    def given(self, args: argparse.Namespace) -> dict[str, list[str]]:
        """The config options given on the command line: flag -> the dotted paths it sets."""
        out = {f"--{flag}": [m.path for m in members] for flag, members in self.groups.items()
               if getattr(args, f"flag:{flag}", None) is not None}
        out.update({f"--{m.path}": [m.path] for members in self.groups.values() for m in members
                    if getattr(args, f"path:{m.path}", None) is not None})
        return out

    def describe(self, err: ConfigError) -> str:
        """The error in terms of the option that sets the field, where there is one."""
        for flag, members in self.groups.items():
            if any(m.path == err.path for m in members):
                where = f"--{flag}" if len(members) == 1 else f"--{flag} ({err.path})"
                return f"{where} {err.problem}"
        return str(err)


def add_config_options(parser: argparse.ArgumentParser, cfg: Any,
                       exclude: Iterable[str] = ()) -> ConfigOptions:
    """Add the options of ``cfg``'s leaves (not those under ``exclude``) to ``parser``."""
    exclude = tuple(exclude)
    groups: dict[str, list[Leaf]] = {}
    for leaf in leaves(cfg):
        if not any(leaf.path == e or leaf.path.startswith(e + ".") for e in exclude):
            groups.setdefault(leaf.flag, []).append(leaf)
    for flag, members in groups.items():
        tp = members[0].type
        assert all(m.type == tp for m in members), f"--{flag} has several types"
        if _optional(tp)[0] is bool:
            parser.add_argument(f"--{flag}", dest=f"flag:{flag}", default=None,
                                action=argparse.BooleanOptionalAction, help=_help(members))
        else:
            parser.add_argument(f"--{flag}", dest=f"flag:{flag}", default=None,
                                type=parser_for(tp), metavar=_metavar(tp), help=_help(members))
        for m in members:
            dotted = m.path.replace("_", "-")
            if dotted != flag:
                kind = {"action": argparse.BooleanOptionalAction} if tp is bool else \
                    {"type": parser_for(tp)}
                parser.add_argument(f"--{dotted}", dest=f"path:{m.path}", default=None,
                                    help=argparse.SUPPRESS, **kind)
    options = ConfigOptions(groups)
    parser.set_defaults(config_options=options)
    return options


def resolve(base: Any, config_file: str | None, changes: dict[str, Any]) -> Any:
    """``base`` with the settings of ``config_file`` (if any), then ``changes``, applied.

    An error in the file names the file and the setting; one in ``changes`` is a ConfigError
    that :meth:`ConfigOptions.describe` turns into the option's name.
    """
    if config_file:
        try:
            base = override(base, read_config_file(config_file))
        except ConfigError as err:
            raise UserError(f"{config_file}: {err}") from None
    return override(base, changes)


def add_common(parser: argparse.ArgumentParser, *names: str) -> None:
    """Options that many commands share, declared once: out, config, overwrite, no_progress."""
    table = {
        "out": dict(required=True, help="output directory (created, or continued)"),
        "config": dict(default=None, metavar="FILE", help="a TOML file of settings, or the name "
                       "of a shipped one (demo, demo-quick, duo-lm1b); options given here "
                       "override it"),
        "overwrite": dict(action="store_true", help="replace results already there"),
        "no_progress": dict(action="store_true", help="no progress bars"),
    }
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, **table[name])
