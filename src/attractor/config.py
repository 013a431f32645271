"""Configs: frozen dataclasses that check themselves once and say what each field means.

A config is a frozen dataclass whose fields are made with :func:`setting` (a default and a help
text) and whose ``__post_init__`` checks its own values with :func:`check`, raising
:class:`ConfigError` with the name of the field. Every default is declared once, there; the rest
of the project reads configs through the generic functions of this module:

    override(cfg, changes)    a copy with nested changes applied (unknown keys, wrong types and
                              bad values are ConfigErrors naming the dotted field)
    from_dict(cls, d)         override(cls(), d): what saved JSON and config files go through
    to_dict(cfg)              JSON-ready nested dict
    differences(a, b)         the dotted fields whose values differ
    read_config_file(path)    a TOML (or JSON) file as a nested dict
    leaves(cfg)               every (dotted path, type, value, help) of a config tree

:mod:`attractor.options` turns the leaves into command-line options.

Two field features: ``presets=TABLE, named_by="name_field"`` makes a nested config follow a
named preset (changing ``name_field`` swaps in ``TABLE[name]`` before the nested changes apply),
and ``entries=lookup`` marks a mapping from names to configs whose classes ``lookup(name)``
gives (the probes of a sweep).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from attractor.errors import UserError

_MISSING = dataclasses.MISSING


class ConfigError(UserError):
    """A bad config value; ``path`` is the dotted field, ``problem`` what is wrong with it."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path} {problem}" if path else problem)

    def under(self, prefix: str) -> ConfigError:
        """The same error for a config nested at ``prefix`` (e.g. "train.data.")."""
        return ConfigError(f"{prefix}{self.path}", self.problem) if prefix else self


def check(ok: bool, path: str, problem: str) -> None:
    """Raise :class:`ConfigError` ``path problem`` unless ``ok``."""
    if not ok:
        raise ConfigError(path, problem)


def setting(default: Any = _MISSING, *, help: str, factory: Callable | None = None,
            **meta: Any) -> Any:
    """A dataclass field with its help text (and ``presets``/``named_by``/``entries``/``flag``)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help, **meta})
    return dataclasses.field(default=default, metadata={"help": help, **meta})


# --------------------------------------------------------------------------- types and values

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for ``T | None``, else (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def type_name(tp: Any) -> str:
    """A short human name of a field type: "integer", "list of numbers", ..."""
    inner, optional = _optional(tp)
    if typing.get_origin(inner) is tuple:
        item = typing.get_args(inner)[0]
        name = f"comma-separated {type_name(item)}s"
    else:
        name = {bool: "true/false", int: "whole number", float: "number", str: "text"}.get(
            inner, getattr(inner, "__name__", str(inner)))
    return f"{name} or none" if optional else name


def coerce(value: Any, tp: Any, path: str) -> Any:
    """``value`` (from JSON, TOML or the command line) as type ``tp``, or a ConfigError."""
    inner, optional = _optional(tp)
    if value is None:
        check(optional, path, f"must be a {type_name(tp)}, not empty")
        return None
    if typing.get_origin(inner) is tuple:
        check(isinstance(value, (list, tuple)), path, f"must be a list, got {value!r}")
        item = typing.get_args(inner)[0]
        return tuple(coerce(v, item, path) for v in value)
    if inner is bool:
        check(isinstance(value, bool), path, f"must be true or false, got {value!r}")
    elif inner is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and math.isfinite(value) and value == int(value) \
                and abs(value) < 2**53:
            value, ok = int(value), True
        check(ok, path, f"must be a whole number, got {value!r}")
    elif inner is float:
        check(isinstance(value, (int, float)) and not isinstance(value, bool), path,
              f"must be a number, got {value!r}")
        check(math.isfinite(value), path, f"must be a finite number, got {value!r}")
        value = float(value)
    elif inner is str:
        check(isinstance(value, str), path, f"must be text, got {value!r}")
    return value


# --------------------------------------------------------------------------- building configs

def _renamed(cls: type, changes: Mapping[str, Any]) -> dict[str, Any]:
    """``changes`` with keys renamed by the class's ``RENAMED`` table (older saved configs)."""
    table = getattr(cls, "RENAMED", {})
    return {table.get(k, k): v for k, v in changes.items()}


def _base_for(f: dataclasses.Field, cfg: Any, changes: Mapping[str, Any], path: str) -> Any:
    """The value a nested field starts from: its preset when its name changes, else its own."""
    named_by = f.metadata.get("named_by")
    if named_by and named_by in changes:
        table, name = f.metadata["presets"], changes[named_by]
        check(name in table, path + named_by,
              f"is {name!r}, not one of {', '.join(table)}")
        return table[name]
    return getattr(cfg, f.name)


def _entries(f: dataclasses.Field, current: Mapping, changes: Any, path: str) -> dict:
    check(isinstance(changes, Mapping), path, "must be a table of named settings")
    lookup, out = f.metadata["entries"], dict(current)
    for key, sub in changes.items():
        cls = lookup(key)
        check(cls is not None, f"{path}.{key}", "is not a known entry")
        base = current.get(key)
        out[key] = override(base if base is not None else cls(), sub, f"{path}.{key}.")
    return out


def override(cfg: Any, changes: Mapping[str, Any], path: str = "") -> Any:
    """A copy of ``cfg`` with ``changes`` applied.

    ``changes`` is a nested dict (``{"data": {"block_length": 64}}``) whose keys may also be
    dotted (``{"data.block_length": 64}``). Values are coerced to the field types; the copy
    checks itself. Errors name the dotted field under ``path``.
    """
    cls = type(cfg)
    check(isinstance(changes, Mapping), path.rstrip("."), "must be a table of settings")
    changes = _renamed(cls, nest(changes))
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for key in changes:
        check(key in by_name, f"{path}{key}", "is not a setting"
              f" (known: {', '.join(by_name)})")
    hints, kw = _hints(cls), {}
    for name, value in changes.items():
        f, where = by_name[name], f"{path}{name}"
        current = _base_for(f, cfg, changes, path)
        if "entries" in f.metadata:
            kw[name] = _entries(f, current, value, where)
        elif dataclasses.is_dataclass(current):
            kw[name] = override(current, value, where + ".")
        else:
            kw[name] = coerce(value, hints[name], where)
    for f in dataclasses.fields(cls):                 # a preset swapped in by its name alone
        if f.metadata.get("named_by") in changes and f.name not in kw:
            kw[f.name] = _base_for(f, cfg, changes, path)
    try:
        return dataclasses.replace(cfg, **kw)
    except ConfigError as err:
        raise err.under(path) from None


def from_dict(cls: type, values: Mapping[str, Any], path: str = "") -> Any:
    """The config of class ``cls`` saved as ``values`` (missing keys take their defaults)."""
    return override(cls(), values, path)


def nest(changes: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a": {"c": 2}}`` -> ``{"a": {"b": 1, "c": 2}}``."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            value = nest({rest: value})
        elif isinstance(value, Mapping):
            value = nest(value)
        if isinstance(value, Mapping) and isinstance(out.get(head), Mapping):
            out[head] = _merge(out[head], value)
        else:
            out[head] = value
    return out


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """``b`` laid over ``a``, recursively: a leaf of ``b`` wins, sibling leaves of ``a`` stay."""
    out = dict(a)
    for key, value in b.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merge(out[key], value) if both else value
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of ``cfg`` (tuples become lists)."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(cfg)


def differences(a: Any, b: Any) -> list[str]:
    """``path: b -> a`` for every dotted field where configs (or their dicts) differ."""
    def walk(x: Any, y: Any, prefix: str) -> Iterator[str]:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for key in sorted(set(x) | set(y)):
                yield from walk(x.get(key), y.get(key), f"{prefix}{key}.")
        elif x != y:
            yield f"{prefix.rstrip('.')}: {y!r} -> {x!r}"
    return list(walk(to_dict(a) if dataclasses.is_dataclass(a) else a,
                     to_dict(b) if dataclasses.is_dataclass(b) else b, ""))


# --------------------------------------------------------------------------- leaves and files

def _toml():
    try:
        import tomllib
    except ModuleNotFoundError:          # Python 3.10
        import tomli as tomllib
    return tomllib


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One settable value of a config tree."""

    path: str                 # dotted, e.g. "data.block_length"
    type: Any
    value: Any
    help: str
    flag: str                 # bare option name, e.g. "block-length"


def leaves(cfg: Any, prefix: str = "") -> Iterator[Leaf]:
    """Every leaf of ``cfg`` (a config, or a mapping of names to configs), nested configs and
    named entries included, in field order."""
    if isinstance(cfg, Mapping):
        for key, sub in cfg.items():
            yield from leaves(sub, f"{prefix}{key}.")
        return
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, path = getattr(cfg, f.name), f"{prefix}{f.name}"
        if "entries" in f.metadata:
            for key, sub in value.items():
                yield from leaves(sub, f"{path}.{key}.")
        elif dataclasses.is_dataclass(value):
            yield from leaves(value, path + ".")
        else:
            flag = f.metadata.get("flag", f.name).replace("_", "-")
            yield Leaf(path, hints[f.name], value, f.metadata.get("help", ""), flag)


PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def config_path(name: str) -> Path:
    """A config file by path, or by the name of one shipped with attractor (``demo``)."""
    path = Path(name)
    if not path.exists() and (PACKAGED_CONFIGS / f"{name}.toml").is_file():
        return PACKAGED_CONFIGS / f"{name}.toml"
    return path


def read_config_file(name: str | Path) -> dict[str, Any]:
    """The settings in a TOML (or .json) file, or a shipped config's name; one-line errors."""
    path = config_path(str(name))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        shipped = ", ".join(sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.toml")))
        raise UserError(f"config file {path} does not exist (shipped configs: {shipped})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the config file {path} ({err})") from None
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            values = _toml().loads(text)
    except ValueError as err:              # TOMLDecodeError and JSONDecodeError
        raise UserError(f"{path} is not a valid config file ({err})") from None
    if not isinstance(values, dict):
        raise UserError(f"{path} does not hold a table of settings")
    return values
