"""Reading checkpoint files without running anything they name.

``.ckpt``/``.pt``/``.bin`` files are read with ``torch.load(weights_only=True)`` and nothing else:
torch's restricted unpickler builds tensors and plain containers only. A Lightning checkpoint
also pickles its hyper-parameters (an OmegaConf ``DictConfig``, the tokenizer); torch refuses such
classes, so every class or function the file names outside torch's allowlist is bound, for this
one load, to :class:`Placeholder`, an inert record of the data pickled for it. The named code is
never imported or called, and the tensors the loader uses are checked to be real tensors.
``.safetensors`` files are read with safetensors, ``config.json`` with json.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from attractor.errors import UserError

# What a corrupt or hostile file can make torch.load or safetensors raise.
READ_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, KeyError,
               IndexError, AttributeError, OSError, zipfile.BadZipFile, UnicodeDecodeError)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """The line of an exception's message that says what is wrong, shortened to ``limit``.

    torch's weights_only refusals wrap the reason in paragraphs of advice; those are skipped.
    """
    advice = ("Weights only load failed", "Check the documentation", "Please file an issue")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line.split("WeightsUnpickler error:")[-1].strip() for line in lines
               if not line.startswith(advice)]
    text = (reasons or lines or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Placeholder:
    """Stands in for a class or function a checkpoint names outside torch's allowlist.

    The unpickler calls it where it would have called the named code; it only keeps the
    arguments and the pickled state, so hyper-parameters can still be read as plain data.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        self = object.__new__(cls)
        self.args, self.state = args, None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _empty_dict(*args: Any) -> dict:
    """Stands in for ``collections.defaultdict``: the unpickler then fills a plain dict."""
    return {}


def _placeholders(path: Path) -> list[tuple[Any, str]]:
    """(stand-in, dotted name) for every global the file names that torch would refuse."""
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is None or not zipfile.is_zipfile(path):   # torch < 2.6, or the legacy format
        return []
    return [(_empty_dict if name == "collections.defaultdict" else Placeholder, name)
            for name in scan(str(path))]


def torch_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a UserError when it cannot be read."""
    try:
        stand_ins = _placeholders(path)
        allow = getattr(torch.serialization, "safe_globals", None)
        with allow(stand_ins) if stand_ins and allow else contextlib.nullcontext():
            return torch.load(path, map_location="cpu", weights_only=True)
    except READ_ERRORS as exc:
        raise UserError(f"{path}: cannot be read with torch.load(weights_only=True) "
                        f"(corrupt, or not a torch checkpoint): {one_line(exc)}") from None


def safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a .safetensors file, on the CPU."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, *READ_ERRORS) as exc:
        raise UserError(f"{path}: cannot be read as safetensors (corrupt?): {one_line(exc)}") \
            from None


def read_json(path: Path) -> dict:
    """A JSON object from ``path``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as JSON: {one_line(exc)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: holds a JSON {type(data).__name__}, not an object")
    return data


def plain(obj: Any, depth: int = 0) -> Any:
    """Pickled hyper-parameters as plain dicts, lists and scalars (None where unreadable).

    OmegaConf containers pickle their entries under ``_content`` and value nodes their value
    under ``_val``; a Placeholder keeps that state, so a DictConfig reads back as a nested dict.
    """
    if depth > 64:
        return None
    if isinstance(obj, Placeholder):
        if isinstance(obj.state, dict):
            for key in ("_content", "_val"):
                if key in obj.state:
                    return plain(obj.state[key], depth + 1)
        return None
    if isinstance(obj, Mapping):
        return {k: plain(v, depth + 1) for k, v in obj.items() if isinstance(k, str)}
    if isinstance(obj, (list, tuple)):
        return [plain(v, depth + 1) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool)) or obj is None else None
