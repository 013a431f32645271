"""An alternative memory allocator for the command line, set up before any heavy import.

Large per-step tensors freed back to the system with glibc's malloc are page-faulted in again on
every step; jemalloc or tcmalloc keep them. The fused loss (``loss_fused.py``) works in 4 MiB
chunks, which glibc recycles itself, and on this project's 2-core CPU glibc then measured faster
than jemalloc (tiny, bf16: 1,584 vs 1,327 tokens/s at K = 50258 and 4,373 vs 2,722 at
K = 4096; benchmarks/results/train_throughput.json). So the default is the system allocator; set
``ATTRACTOR_ALLOCATOR`` to try another, and the ``attractor`` command re-executes itself once
with it in ``LD_PRELOAD`` (:func:`maybe_reexec`):
    system (default)      never re-execute
    auto                  jemalloc, else tcmalloc, else the system allocator
    jemalloc | tcmalloc   that one (error if it is not installed)
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


def preload_env(path: str, env: dict | None = None) -> dict:
    """Environment that preloads the allocator at ``path`` (with the settings the CLI uses)."""
    env = dict(os.environ if env is None else env)
    env["LD_PRELOAD"] = f"{path} {env.get('LD_PRELOAD', '')}".strip()
    if "jemalloc" in path:
        # Keep freed pages around between training steps instead of returning them at once.
        env.setdefault("MALLOC_CONF", "background_thread:true,dirty_decay_ms:10000,"
                                      "muzzy_decay_ms:10000")
    return env


def maybe_reexec(argv: list[str]) -> None:
    """Re-execute ``python -m attractor argv`` with a fast allocator preloaded, once."""
    if os.environ.get(_MARK) or not sys.platform.startswith("linux"):
        return
    path = choose(os.environ.get("ATTRACTOR_ALLOCATOR", "system"))
    preload = os.environ.get("LD_PRELOAD", "")
    if path is None or os.path.basename(path) in preload:
        return
    env = preload_env(path)
    env[_MARK] = path
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "attractor", *argv], env)


def active() -> str:
    """Which allocator this process runs with (for logs and benchmarks)."""
    return os.environ.get(_MARK) or ("preloaded: " + os.environ["LD_PRELOAD"]
                                     if os.environ.get("LD_PRELOAD") else "system")
