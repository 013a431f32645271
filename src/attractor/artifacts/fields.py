"""The checks every loader of :mod:`attractor.artifacts` is made of: reading JSON and JSON-lines
files, and typed fields whose failures are one-line :class:`Damaged` errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attractor.errors import UserError


class Damaged(UserError):
    """A file attractor wrote that no longer holds what its writer wrote."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path} is damaged: {problem}")


def read_json(path: Path) -> Any:
    """The JSON value in ``path``; missing, empty, truncated and non-UTF-8 files are Damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not a UTF-8 JSON file (byte {err.start}); damaged") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); it is "
                        "damaged") from None


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def shown(v: Any) -> str:
    return repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."


def need(ok: bool, path: Path | str, problem: str) -> None:
    """Raise :class:`Damaged` for ``path`` unless ``ok``."""
    if not ok:
        raise Damaged(path, problem)


def table(value: Any, path: Path, what: str = "the file") -> dict:
    need(isinstance(value, dict), path, f"{what} holds {shown(value)}, not a table of fields")
    return value


def int_field(d: dict, key: str, path: Path, lo: int = 0, optional: bool = False):
    value = d.get(key)
    if value is None and optional:
        return None
    need(key in d, path, f"field {key!r} is missing")
    need(is_int(value) and value >= lo, path, f"{key} is {shown(value)}, not a whole number "
         f">= {lo}")
    return value


def number_field(d: dict, key: str, path: Path, optional: bool = True) -> float | None:
    value = d.get(key)
    if value is None:
        need(optional, path, f"field {key!r} is missing")
        return None
    need(is_int(value) or isinstance(value, float), path,
         f"{key} is {shown(value)}, not a number")
    return float(value)


def jsonl_rows(path: Path, torn_last: bool):
    """(line number, value) of each non-blank line of a JSON-lines file. A last line that does
    not parse is skipped when ``torn_last`` (it was being appended when the process died);
    any other is Damaged."""
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        try:
            value = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            if torn_last and number == len(lines):
                continue
            raise Damaged(path, f"line {number} is not a JSON row") from None
        if raw.strip():
            yield number, value
