import os
import subprocess
import sys

import pytest

from attractor import allocator
from attractor.errors import UserError


def test_choice_of_allocator():
    assert allocator.choose("system") is None
    with pytest.raises(UserError, match="ATTRACTOR_ALLOCATOR"):
        allocator.choose("hoard")
    env = allocator.preload_env("/x/libjemalloc.so.2", {"LD_PRELOAD": "/y/other.so"})
    assert env["LD_PRELOAD"] == "/x/libjemalloc.so.2 /y/other.so" and "MALLOC_CONF" in env


def test_bad_allocator_setting_is_one_line():
    env = dict(os.environ, ATTRACTOR_ALLOCATOR="hoard")
    result = subprocess.run([sys.executable, "-m", "attractor", "info"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
