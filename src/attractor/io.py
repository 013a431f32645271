"""Small file helpers shared by every experiment: atomic JSON, JSON lines, CSV, output folders.

Results are never half-written: each writer goes to a temporary file of its own in the same
directory (so two writers never share one) and renames it into place; a write that fails (a full
disk) removes its temporary file and is a one-line :class:`UserError` naming the file. Results
are never overwritten by another experiment either: :func:`prepare_results_dir` only writes into
a folder that is new, empty, or holds results of the same kind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attractor.errors import UserError, require


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None; numpy and torch scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file (mkstemp's own is 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def _write_failed(path: Path, err: OSError) -> UserError:
    return UserError(f"cannot write {path}: {err.strerror or err}")


def atomic_write(path: str | os.PathLike, write, newline: str | None = None) -> Path:
    """Call ``write(f)`` on a new text file and rename it to ``path``; nothing is left behind
    when it fails (the error names ``path``)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_failed(path, err) from None
    try:
        with open(fd, "w", encoding="utf-8", newline=newline) as f:
            os.chmod(tmp, _FILE_MODE)
            write(f)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _write_failed(path, err) from None
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8), atomically."""
    return atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; a file that is not valid JSON is a one-line :class:`UserError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg}, line {err.lineno}); "
                        "it may be damaged") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 JSON file; it may be damaged") from None


def make_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents); a file in the way is a one-line error."""
    path = Path(path)
    require(not path.exists() or path.is_dir(), f"{path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the directory {path}: {err.strerror}") from None
    return path


def results_kind(out: Path) -> str | None:
    """The ``kind`` of ``out``'s results.json or, for an unfinished one, of its config.json."""
    for name in ("results.json", "config.json"):
        try:
            saved = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(saved, dict) and isinstance(saved.get("kind"), str):
            return saved["kind"]
    return None


def prepare_results_dir(out: str | os.PathLike, kind: str, overwrite: bool,
                        config: Mapping[str, Any]) -> Path:
    """Make ``out`` ready for results of ``kind`` and write its config.json first.

    Accepted: a new or empty folder; one holding an unfinished experiment of the same kind (its
    config.json says so; it is redone); one holding finished results of the same kind, with
    ``overwrite``. Anything else, e.g. a training run or a sweep, is refused untouched.
    """
    from attractor.lock import LOCK_NAME, output_dir

    out = output_dir(out)
    require(not out.exists() or out.is_dir(), f"{out} exists and is not a directory")
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        found = results_kind(out)
        require(found == kind, f"{out} is not empty and holds no {kind} results"
                + (f" (it holds {found})" if found else "") + "; choose another --out")
        require(overwrite or not (out / "results.json").exists(),
                f"{out} already holds results; choose another --out or pass --overwrite")
    make_dir(out)
    write_json(out / "config.json", {"kind": kind, "config": config})
    return out


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    def write(f) -> None:
        for row in rows:
            f.write(json.dumps(_clean(row)) + "\n")
    return atomic_write(path, write)


def append_jsonl(path: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """Append one JSON object as a line (flushed, so a killed process loses at most this line,
    which readers of the file then ignore as torn)."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(row)) + "\n")
            f.flush()
    except OSError as err:
        raise _write_failed(path, err) from None


def read_jsonl(path: str | os.PathLike) -> list:
    """The values of every line of a JSON-lines file that parses (torn or non-UTF-8 lines are
    skipped). Files attractor reads back have schema-checked loaders in
    :mod:`attractor.artifacts`; this is for tests and tools."""
    rows = []
    for line in Path(path).read_bytes().split(b"\n"):
        try:
            rows.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    return rows


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write dict rows as CSV (columns from the union of keys, in first-seen order)."""
    path = Path(path)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def write(f) -> None:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(_clean(dict(row)))
    return atomic_write(path, write, newline="")
