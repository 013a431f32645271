"""The benchmark scripts: what they measure, and that every code path runs (GPU script dry)."""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """The benchmarks directory importable, as when its scripts run."""
    monkeypatch.syspath_prepend(str(BENCH))
    return lambda name: importlib.import_module(name)


def test_train_throughput_measures_the_configs_dropout(bench):
    tt = bench("train_throughput")
    assert tt.model_config("tiny", None).dropout == 0.1            # as `attractor train --model tiny`
    assert tt.model_config("tiny", 0.0).dropout == 0.0
    state = tt.attractor_state(tt.model_config("tiny", None), 16, torch.device("cpu"))
    blocks = state["model"].blocks
    assert state["model"].training and len(blocks) and all(b.dropout_p == 0.1 for b in blocks)
    args = tt.parse_args(["--batch", "2", "--length", "4", "--steps", "1", "--warmup", "0",
                          "--dropout", "0.1", "--device", "cpu"])
    row = tt.measure_one("nano:16:fp32:auto:0", args)
    assert row["dropout"] == 0.1 and row["device"] == "cpu" and row["tokens_per_s"] > 0


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_every_head_takes_the_same_step(bench, amp):
    """The same seeded step through the logits and through the fused heads (attractor.head_loss):
    the same loss, the same gradients and, in float32, the same weights after AdamW (dropout
    draws included)."""
    tt = bench("train_throughput")
    cfg = tt.model_config("nano", 0.1)
    losses, grads, states = [], [], []
    for impl in ("logits", "fused", "recompute"):
        state = tt.attractor_state(cfg, 40, torch.device("cpu"))
        with torch.no_grad():                        # a head that is not zero
            state["model"].output.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
        gen = torch.Generator().manual_seed(3)
        x0 = torch.randint(0, 40, (3, 6), generator=gen)
        losses.append([tt.attractor_step(state, x0, gen, amp, impl)])
        grads.append([p.grad.clone() for p in state["model"].parameters()])   # the first step's
        losses[-1].append(tt.attractor_step(state, x0, gen, amp, impl))
        states.append(state)
    for other, grad, state in zip(losses[1:], grads[1:], states[1:], strict=True):
        if amp is None:
            torch.testing.assert_close(torch.tensor(other), torch.tensor(losses[0]), rtol=1e-5,
                                       atol=1e-6)
            for (name, a), b in zip(states[0]["model"].named_parameters(),
                                    state["model"].parameters(), strict=True):
                torch.testing.assert_close(b, a, rtol=1e-5, atol=5e-5, msg=name)
            continue
        # Under bf16 the heads round the same numbers differently, so the gradients agree to a
        # few bf16 roundings (u = 2^-8) in norm. The weights after AdamW are not compared: its
        # first step moves every weight by lr whatever the size of its gradient, so a rounding
        # that flips the sign of a gradient entry near zero moves that weight by 2 lr.
        torch.testing.assert_close(other[0], losses[0][0], rtol=1e-6, atol=0.0)
        for a, b in zip(grads[0], grad, strict=True):
            assert float((b - a).norm()) <= 4 * 2.0 ** -8 * float(a.norm())


def test_peer_duo_without_a_checkout_says_how_to_get_one():
    done = subprocess.run([sys.executable, str(BENCH / "peer_duo.py")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "git clone https://github.com/s-sahoo/duo" in lines[0]


def test_flash_attn_stub_rotary_is_attractors_rotary(bench):
    from attractor.model.attention import apply_rotary, rotary_tables

    peer = bench("peer_duo")
    B, S, H, D = 2, 5, 3, 8
    x = torch.randn(B, S, H, D, generator=torch.Generator().manual_seed(0))
    cos, sin = rotary_tables(S, D, "cpu")                                  # (S, D), halves equal
    ours = apply_rotary(x.transpose(1, 2), cos, sin).transpose(1, 2)
    torch.testing.assert_close(peer.rotary_torch(x, cos[:, : D // 2], sin[:, : D // 2]), ours)
    partial = peer.rotary_torch(x, cos[:, : D // 4], sin[:, : D // 4])     # first D/2 channels
    assert torch.equal(partial[..., D // 2:], x[..., D // 2:])


def test_placeholder_packages_import_subclass_and_decorate(bench):
    peer = bench("peer_duo")
    finder = peer._PlaceholderFinder(["no_such_package_here"])
    sys.meta_path.append(finder)
    try:
        import no_such_package_here.utils as utils
        from no_such_package_here.sub import Base

        class Child(Base):
            pass

        def f():
            return 1
        assert utils.rank_zero_only(f) is f and Child().__class__.__mro__[1] is Base
    finally:
        sys.meta_path.remove(finder)
        for key in [k for k in sys.modules if k.startswith("no_such_package_here")]:
            del sys.modules[key]


DUO = os.environ.get("ATTRACTOR_DUO_CHECKOUT")
needs_duo = pytest.mark.skipif(
    not DUO or importlib.util.find_spec("einops") is None,
    reason="set ATTRACTOR_DUO_CHECKOUT to a clone of github.com/s-sahoo/duo (and install einops)")

DUO_LOSS_CHECK = """
import sys, torch
from pathlib import Path
import peer_duo
from attractor.loss import nelbo_per_token
peer_duo.prepare_imports(Path(sys.argv[1]))
duo = peer_duo.duo_state(Path(sys.argv[1]), 53, torch.device("cpu"))["duo"]
g = torch.Generator().manual_seed(0)
lp = torch.log_softmax(3 * torch.randn(3, 5, 53, generator=g, dtype=torch.float64), -1)
x0 = torch.randint(0, 53, (3, 5), generator=g)
zt = torch.where(torch.rand(3, 5, generator=g) < 0.5, x0, torch.randint(0, 53, (3, 5), generator=g))
a, da = torch.tensor([0.999, 0.5, 0.01], dtype=torch.float64), torch.full((3,), -0.999).double()
theirs = duo.nll_per_token(log_x_theta=lp, xt=zt, x0=x0, alpha_t=a[:, None], dalpha_t=da[:, None])
torch.testing.assert_close(theirs, nelbo_per_token(lp, x0, zt, a, da), rtol=1e-10, atol=1e-9)
"""


@needs_duo
@pytest.mark.slow
def test_duos_loss_through_the_stand_in_is_eq_3():
    done = subprocess.run([sys.executable, "-c", DUO_LOSS_CHECK, DUO], capture_output=True,
                          text=True, cwd=BENCH, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@needs_duo
@pytest.mark.slow
def test_peer_comparison_runs(tmp_path):
    out = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, str(BENCH / "peer_duo.py"), "--duo", DUO, "--batch",
                           "2", "--length", "8", "--vocab", "64", "--steps", "1", "--warmup",
                           "0", "--rounds", "2", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    first, second = ([row["side"] for row in r["runs"]] for r in result["rounds"])
    assert first == ["duo", "attractor"] and second == ["attractor", "duo"]
    runs = result["rounds"][0]["runs"]
    assert runs[0]["parameters"] == runs[1]["parameters"]
    assert result["summary"]["duo_best"] == result["summary"]["attractor_default"] == "default"


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    """Every stage of benchmarks/gpu.py on the CPU at tiny sizes (the 2-GPU stage as two gloo
    processes)."""
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(BENCH / "gpu.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stages = json.loads(out.read_text())["stages"]
    runs = stages["train"]["result"]["runs"]
    assert {r["loss"] for r in runs} == {"auto", "logits", "recompute", "reference"}
    assert {r["probe"] for r in stages["probes"]["result"]["probes"]} >= {"entropy", "generate"}
    cli = stages["cli"]["runs"]
    assert [r["processes"] for r in cli] == [1, 2] and all(r["tokens_per_s_median"] > 0 for r in cli)
    probes = stages["cli"]["probes"]
    assert [r["processes"] for r in probes] == [1, 2] and all(r["rc"] == 0 for r in probes)
    assert probes[0]["rows_sha256"] == probes[1]["rows_sha256"]      # same items on 1 and 2
    assert "skipped" in stages["peer"]
