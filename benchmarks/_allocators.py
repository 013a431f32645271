"""Preloading another malloc for a benchmark's child process (users do the same with LD_PRELOAD;
see docs/performance.md)."""

from __future__ import annotations

import glob
import os

CANDIDATES = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
}
SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
               "/usr/lib", "/usr/local/lib", "/opt/homebrew/lib")


def find_library(name: str) -> str | None:
    """Path of the shared library of allocator ``name``, or None."""
    for directory in SEARCH_DIRS:
        for filename in CANDIDATES[name]:
            hits = glob.glob(os.path.join(directory, filename))
            if hits:
                return hits[0]
    return None


def preload_env(path: str, env: dict) -> dict:
    """``env`` preloading the allocator at ``path``; jemalloc keeps freed pages for 10 s."""
    env = dict(env, LD_PRELOAD=f"{path} {env.get('LD_PRELOAD', '')}".strip())
    if "jemalloc" in path:
        env.setdefault("MALLOC_CONF", "background_thread:true,dirty_decay_ms:10000,"
                                      "muzzy_decay_ms:10000")
    return env
