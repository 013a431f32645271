"""A fast memory allocator for the command line, set up before any heavy import.

Training and probing allocate and free large per-step tensors (logits over the vocabulary); with
glibc's malloc these are returned to the system and page-faulted back in on every step. jemalloc
or tcmalloc keep them. When the ``attractor`` command starts, :func:`maybe_reexec` re-executes
the process once with the first allocator found in ``LD_PRELOAD``.

Control it with the environment variable ``ATTRACTOR_ALLOCATOR``:
    auto (default)    jemalloc, else tcmalloc, else the system allocator
    jemalloc | tcmalloc   that one (error if it is not installed)
    system            never re-execute
Install one on Debian/Ubuntu with ``apt-get install libjemalloc2``.
"""

from __future__ import annotations

import glob
import os
import sys

from attractor.errors import UserError

CANDIDATES = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
}
SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
               "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib")
_MARK = "ATTRACTOR_ALLOCATOR_ACTIVE"


def find_library(name: str) -> str | None:
    """Path of the shared library of allocator ``name``, or None."""
    for directory in SEARCH_DIRS:
        for filename in CANDIDATES[name]:
            hits = glob.glob(os.path.join(directory, filename))
            if hits:
                return hits[0]
    return None


def choose(setting: str) -> str | None:
    """The library to preload for ``setting`` (see the module docstring)."""
    if setting == "system":
        return None
    if setting == "auto":
        for name in CANDIDATES:
            path = find_library(name)
            if path:
                return path
        return None
    if setting not in CANDIDATES:
        raise UserError(f"ATTRACTOR_ALLOCATOR must be auto, jemalloc, tcmalloc or system, "
                        f"not {setting!r}")
    path = find_library(setting)
    if path is None:
        raise UserError(f"ATTRACTOR_ALLOCATOR={setting} but lib{setting} is not installed")
    return path


def maybe_reexec(argv: list[str]) -> None:
    """Re-execute ``python -m attractor argv`` with a fast allocator preloaded, once."""
    if os.environ.get(_MARK) or not sys.platform.startswith("linux"):
        return
    path = choose(os.environ.get("ATTRACTOR_ALLOCATOR", "auto"))
    preload = os.environ.get("LD_PRELOAD", "")
    if path is None or os.path.basename(path) in preload:
        return
    env = dict(os.environ, LD_PRELOAD=f"{path} {preload}".strip(), **{_MARK: path})
    if "jemalloc" in path:
        # Keep freed pages around between training steps instead of returning them at once.
        env.setdefault("MALLOC_CONF", "background_thread:true,dirty_decay_ms:10000,"
                                      "muzzy_decay_ms:10000")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "attractor", *argv], env)


def active() -> str:
    """Which allocator this process runs with (for logs and benchmarks)."""
    return os.environ.get(_MARK) or ("preloaded: " + os.environ["LD_PRELOAD"]
                                     if os.environ.get("LD_PRELOAD") else "system")
