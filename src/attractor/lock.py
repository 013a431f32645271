"""One writer per results directory: a lock file that names its holder.

``with hold(directory, "train"):`` takes ``directory/.attractor.lock`` (creating the directory if
needed) or refuses at once with a one-line :class:`UserError` that names the holder:

    runs/a is in use by attractor train (process 4711 on node1 since 2025-01-01 12:00:00); wait
    for it to finish or choose another directory

The exclusion itself is an ``flock`` on the lock file, which the kernel drops when its process
dies, so a lock left behind by a killed process is stale and is taken over. The file records
{"pid", "host", "command", "mode", "since"} for the message; a lock recorded by a process on
another host is only taken over when that host's lock is released, since its process cannot be
checked from here (on a file system without ``flock`` the record alone decides: a live process
on this host, or any process on another host, holds it).

Locks are re-entrant within a process (a sweep holds its directory while it trains and probes
its runs, each under that run's own lock). ``shared=True`` takes the lock in shared mode: any
number of shared holders (sweep jobs dispatched with ``--only``, one run each) exclude an
exclusive one (a whole sweep). Under data parallelism only rank 0 writes, so only rank 0 locks
(other ranks pass through). When the lock is released its file is removed, and so are the
directories that taking it created, if nothing else was written into them: a command refused
before its first result leaves nothing behind. Taking a lock alone also deletes the temporary
files that a killed writer left there (see :func:`attractor.io.atomic_write`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from attractor.errors import UserError, require

LOCK_NAME = ".attractor.lock"
HOST = socket.gethostname()
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)

try:
    import fcntl
except ImportError:                     # pragma: no cover - Windows: the record alone decides
    fcntl = None


@dataclass
class _Held:
    fd: int
    path: Path                          # the lock file
    shared: bool
    created: list[Path] = field(default_factory=list)    # directories made to hold it
    count: int = 1


_HELD: dict[Path, _Held] = {}


def output_dir(name: str | os.PathLike) -> Path:
    """``name`` as a directory path; an empty name (which would mean the current directory) is
    a one-line error."""
    require(str(name).strip() != "", "the output directory is empty (--out ''); name a "
            "directory")
    return Path(name)


def lock_path(directory: str | os.PathLike, beside: bool = False) -> Path:
    """The lock file of ``directory``: inside it, or next to it (``beside``)."""
    directory = Path(directory)
    if beside:
        return directory.parent / f".{directory.name}{LOCK_NAME}"
    return directory / LOCK_NAME


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:             # exists, owned by someone else
        return True
    return True


def read_holder(path: Path) -> dict | None:
    """The record in a lock file, or None when it is absent, empty or unreadable."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("pid"), int) \
        and isinstance(record.get("host"), str)
    return record if ok else None


def _describe(record: dict | None) -> str:
    if record is None:
        return "another process"
    return (f"{record.get('command', 'attractor')} (process {record['pid']} on "
            f"{record['host']} since {record.get('since', '?')})")


def _busy(directory: Path, record: dict | None) -> UserError:
    return UserError(f"{directory} is in use by {_describe(record)}; wait for it to finish or "
                     "choose another directory")


def _record(command: str, shared: bool) -> bytes:
    return json.dumps({"pid": os.getpid(), "host": HOST, "command": command,
                       "mode": "shared" if shared else "exclusive",
                       "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()


def _check_record(directory: Path, path: Path, record: dict | None, shared: bool,
                  flocked: bool) -> None:
    """Refuse a lock whose recorded holder may still run; a dead one on this host is stale."""
    if record is None or record["pid"] == os.getpid() and record["host"] == HOST:
        return
    if shared and record.get("mode") == "shared":
        return                          # shared holders coexist
    if record["host"] == HOST:
        if not flocked and _alive(record["pid"]):
            raise _busy(directory, record)
        return                          # its process is gone (or its flock is released)
    raise UserError(f"{directory} is locked by {_describe(record)}, which cannot be checked "
                    f"from {HOST}; if it is no longer running, delete {path}")


def _live_shared(record: dict | None) -> bool:
    return record is not None and record.get("mode") == "shared" and \
        (record["host"] != HOST or _alive(record["pid"]))


def _flock(fd: int, shared: bool) -> str:
    """Take the flock without waiting: "taken", "busy", or "none" on a system or file system
    without flock (where the record alone decides)."""
    if fcntl is None:
        return "none"
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return "busy"
        if err.errno in _NO_FLOCK:
            return "none"
        raise
    return "taken"


def _open_locked(directory: Path, path: Path, shared: bool, wait_s: float
                 ) -> tuple[int, bool]:
    """An open descriptor of ``path`` holding its flock (the file may be replaced meanwhile),
    and whether the flock is real."""
    deadline = time.monotonic() + wait_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        state = _flock(fd, shared)
        if state != "busy":
            try:                        # released and removed between open and flock: retry
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    return fd, state == "taken"
            except FileNotFoundError:
                pass
        os.close(fd)
        if time.monotonic() >= deadline:
            raise _busy(directory, read_holder(path))
        time.sleep(0.05)


def _make_dirs(directory: Path) -> list[Path]:
    """Create ``directory`` and its missing parents; the ones created, innermost first."""
    missing, d = [], directory
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    require(not directory.exists() or directory.is_dir(),
            f"{directory} exists and is not a directory")
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            require(d.is_dir(), f"{d} exists and is not a directory")
        except OSError as err:
            raise UserError(f"cannot create the directory {d}: {err.strerror}") from None
    return missing


def _acquire(directory: Path, command: str, shared: bool, beside: bool, wait_s: float) -> _Held:
    created = _make_dirs(directory.parent if beside else directory)
    path = lock_path(directory, beside)
    try:
        fd, flocked = _open_locked(directory, path, shared, wait_s)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        record = read_holder(path)
        _check_record(directory, path, record, shared, flocked)
        if not (shared and _live_shared(record)):     # keep the record of a live co-holder
            os.ftruncate(fd, 0)
            os.pwrite(fd, _record(command, shared), 0)
        if not shared and not beside:
            _remove_temporaries(directory)
    except BaseException:
        os.close(fd)
        _remove_empty(created)
        raise
    return _Held(fd, path, shared, created)


def _remove_temporaries(directory: Path) -> None:
    """Delete the temporary files of atomic writes (``.NAME.XXXX.tmp``) that a killed writer
    left in ``directory`` and its probes/: with the lock held alone, nobody else is writing."""
    for folder in (directory, directory / "probes"):
        for path in folder.glob(".*.tmp") if folder.is_dir() else ():
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_empty(created: list[Path]) -> None:
    for d in created:                   # innermost first
        try:
            d.rmdir()
        except OSError:                 # something was written there: keep it
            return


def _release(held: _Held) -> None:
    last = True
    if held.shared and fcntl is not None:   # the last shared holder removes the file
        try:
            fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            last = False
    if last:
        with contextlib.suppress(FileNotFoundError):
            held.path.unlink()
    os.close(held.fd)
    _remove_empty(held.created)


def default_command() -> str:
    """What the lock file records as its holder: the command line, shortened."""
    words = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:3]]
    return " ".join(w for w in words if w)[:120]


@contextlib.contextmanager
def hold(directory: str | os.PathLike, command: str | None = None, shared: bool = False,
         beside: bool = False, wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the lock of ``directory`` for the ``with`` block; see the module docstring.

    ``command`` is what a refused process is told holds it; ``beside`` puts the lock file next
    to the directory (for a directory whose contents must stay exactly the results);
    ``wait_s`` waits that long for the holder to finish instead of refusing at once.
    """
    directory = output_dir(directory)
    if _rank() != 0:                    # data parallel: rank 0 alone writes
        yield directory
        return
    key = directory.resolve()
    held = _HELD.get(key)
    if held is not None:
        held.count += 1
    else:
        held = _HELD[key] = _acquire(directory, command or default_command(), shared, beside,
                                     wait_s)
    try:
        yield directory
    finally:
        held.count -= 1
        if held.count == 0:
            del _HELD[key]
            _release(held)
