"""Argument types shared by the subcommands: strict comma lists and bounded numbers.

Each raises :class:`argparse.ArgumentTypeError`, which the parser turns into one line
``attractor <command>: error: argument --flag: <message>``. Lists reject empty items (``1,,2``,
a trailing comma, an empty string) instead of dropping them, and integer lists reject
fractions instead of truncating them.
"""

from __future__ import annotations

import argparse
import math


def _items(text: str, what: str) -> list[str]:
    parts = [part.strip() for part in text.split(",")]
    if any(not part for part in parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated {what} with no empty item, "
                                         f"got {text!r}")
    return parts


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _int(text: str) -> int:
    value = _float(text)                # accepts 1e4 and 100.0, rejects 8.7
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def finite_float(text: str) -> float:
    """A number that is neither inf nor nan."""
    return _float(text)


def floats(text: str) -> tuple[float, ...]:
    """``0.1,0.5`` -> (0.1, 0.5)."""
    return tuple(_float(part) for part in _items(text, "numbers"))


def ints(text: str) -> tuple[int, ...]:
    """``8,32,1e3`` -> (8, 32, 1000)."""
    return tuple(_int(part) for part in _items(text, "whole numbers"))


def names(text: str) -> tuple[str, ...]:
    """``nano,micro`` -> ("nano", "micro")."""
    return tuple(_items(text, "names"))


def _bounded(value, ok: bool, rule: str, text: str):
    if not ok:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    return _bounded(value, value >= 1, "at least 1", text)


def nonnegative_int(text: str) -> int:
    value = _int(text)
    return _bounded(value, value >= 0, ">= 0", text)


def positive_float(text: str) -> float:
    value = _float(text)
    return _bounded(value, value > 0, "> 0", text)
