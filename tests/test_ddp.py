"""Data parallelism: two CPU processes (gloo) train the same weights as one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--num-train", "64", "--steps", "6", "--batch-size", "16", "--corpus-size", "600",
        "--test-size", "16", "--eval-every", "6", "--checkpoint-every", "3", "--precision",
        "fp32", "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("head", ["auto", "fused"])            # the logits, or head_loss
def test_two_processes_match_one(tmp_path, head):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [*ARGS, "--head", head]
    single = subprocess.run([sys.executable, "-m", "attractor", "train", "--out",
                             str(tmp_path / "one"), *args], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=240)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "attractor", "train", "--out",
                          str(tmp_path / "two"), *args], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=240)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    a = load_file(str(tmp_path / "one" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoint" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
