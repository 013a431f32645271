"""Duo's training step against attractor's, with the same shapes, each in its own process.

Needs a local checkout of the public Duo repository (``git clone https://github.com/s-sahoo/duo``),
given as ``--duo PATH``; none of its code is copied here. The Duo process puts the checkout first
on sys.path and imports Duo's own modules: ``models.dit.DIT`` (built from the checkout's
``configs/model/tiny.yaml``), ``models.ema.ExponentialMovingAverage``, and from ``trainer_base``
and ``algo.DUO_BASE`` the methods of its training loss: ``_loss`` -> ``nll`` (antithetic times,
``LogLinear``, ``UniformState.q_xt``, ``forward``, log-softmax) -> ``DUO_BASE.nll_per_token``, the
uniform-state NELBO. These methods are called on a small object that carries the attributes they
read (vocabulary size, noise schedule, backbone, ...), so no Lightning Trainer or Hydra config is
built; ``training_step`` does no more than ``_loss`` plus logging.

Imports Duo needs but the timed step never calls are stubbed when they are missing (listed in
the JSON under ``duo.stubbed``): ``flash_attn`` (CUDA-only; Duo's non-causal DiT calls only its
pure-torch ``layers.rotary.apply_rotary_emb_torch``, which the stub provides with the same
contract: rotate-half rotary embedding of (B, S, H, D) by (S, D/2) tables) and, for ``algo`` /
``trainer_base`` / ``utils`` / ``dataloader`` / ``metrics``, packages such as lightning, hydra,
timm, torchvision and torchmetrics (placeholder modules). ``einops`` must be installed.

One step on each side, as each trainer takes it: noising, forward pass (bf16 autocast when the
precision is bf16, as Lightning's ``precision: bf16`` does for Duo and ``--precision auto`` for
attractor), the loss in float32, backward, gradient clipping at 1.0, AdamW (Duo: torch's default,
as its configure_optimizers; attractor: fused, as its trainer), EMA update; dropout 0.1 (both
``tiny`` configs). Each side runs in its own process under each allocator asked for
(``--allocators``), ``--rounds`` times, the order reversed every other round; the summary sets
attractor's first allocator (by default what `attractor train` does) against Duo's best.
Writes benchmarks/results/peer_duo.json.

    python benchmarks/peer_duo.py --duo ~/src/duo [--batch 32 --length 128 --vocab 50258]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import platform
import subprocess
import sys
import types
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
ALLOCATORS = ("default", "glibc", "glibc-kept", "jemalloc", "jemalloc-nodecay", "tcmalloc")
HOW_TO_GET = ("peer_duo.py needs --duo PATH, a local checkout of Duo: "
              "git clone https://github.com/s-sahoo/duo /some/path")
# Top-level packages Duo's modules import; stubbed only where they are missing or fail to load.
DUO_PACKAGES = ("lightning", "hydra", "timm", "torchvision", "torchmetrics", "transformers",
                "datasets", "scipy", "fsspec", "requests", "tokenizers", "omegaconf",
                "huggingface_hub")


class _Placeholder(types.ModuleType):
    """A stand-in package: capitalised attributes are empty classes (usable as base classes),
    others are further placeholders; calling one returns its first argument (decorators)."""

    __path__: list = []

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        value = type(name, (), {}) if name[:1].isupper() else _Placeholder(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value

    def __call__(self, *args, **kwargs):
        return args[0] if args else self


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers imports of the named top-level packages and their submodules with placeholders."""

    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _Placeholder(spec.name)

    def exec_module(self, module):
        pass


def rotary_torch(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 interleaved: bool = False) -> torch.Tensor:
    """Rotate-half rotary embedding: x (B, S, H, D); cos, sin (S, R/2) act on the first R
    channels of each head, the rest pass through."""
    assert not interleaved, "only the rotate-half layout is provided"
    rot = 2 * cos.shape[-1]
    cos, sin = (torch.cat([v, v], dim=-1)[:, None] for v in (cos, sin))      # (S, 1, R)
    x1, x2 = x[..., : rot // 2], x[..., rot // 2: rot]
    rotated = torch.cat([-x2, x1], dim=-1)
    return torch.cat([x[..., :rot] * cos + rotated * sin, x[..., rot:]], dim=-1)


def _unavailable(*args, **kwargs):
    raise NotImplementedError("flash_attn is stubbed: only the non-causal Duo DiT runs here")


def install_flash_attn_stub() -> None:
    """flash_attn, flash_attn.layers.rotary and flash_attn.flash_attn_interface in sys.modules."""
    names = ("flash_attn", "flash_attn.layers", "flash_attn.layers.rotary",
             "flash_attn.flash_attn_interface")
    mods = {name: types.ModuleType(name) for name in names}
    mods["flash_attn.layers.rotary"].apply_rotary_emb_torch = rotary_torch
    mods["flash_attn.layers.rotary"].apply_rotary_emb_qkv_ = _unavailable
    mods["flash_attn.flash_attn_interface"].flash_attn_varlen_qkvpacked_func = _unavailable
    mods["flash_attn"].layers = mods["flash_attn.layers"]
    mods["flash_attn"].flash_attn_interface = mods["flash_attn.flash_attn_interface"]
    mods["flash_attn.layers"].rotary = mods["flash_attn.layers.rotary"]
    sys.modules.update(mods)


def _loads(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:                       # missing, or installed but broken for this torch
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False


def prepare_imports(duo: Path) -> list[str]:
    """Put the checkout first on sys.path, stub what is missing; returns the stubbed names."""
    if not (duo / "algo.py").is_file() or not (duo / "models" / "dit.py").is_file():
        raise SystemExit(f"{duo} is not a Duo checkout (no algo.py, models/dit.py). {HOW_TO_GET}")
    if not _loads("einops"):
        raise SystemExit("Duo's DiT needs einops: pip install einops")
    stubbed = []
    if not _loads("flash_attn"):
        install_flash_attn_stub()
        stubbed.append("flash_attn")
    missing = [name for name in DUO_PACKAGES if not _loads(name)]
    if missing:
        sys.meta_path.append(_PlaceholderFinder(missing))
    sys.path.insert(0, str(duo))
    return stubbed + missing


def _namespace(value):
    if isinstance(value, dict):
        return types.SimpleNamespace(**{k: _namespace(v) for k, v in value.items()})
    return value


def duo_config(duo: Path, model: str = "tiny"):
    """The parts of Duo's Hydra config its DiT reads, from the checkout's own YAML files."""
    import yaml

    def read(rel: str) -> dict:
        return yaml.safe_load((duo / "configs" / rel).read_text())

    return _namespace({"model": read(f"model/{model}.yaml"), "algo": read("algo/duo_base.yaml"),
                       "noise": read("noise/log-linear.yaml"), "main": read("config.yaml")})


def duo_state(duo: Path, vocab: int, device: torch.device) -> dict:
    """Duo's DiT, its loss methods on a stand-in object, torch's AdamW and Duo's EMA."""
    algo, trainer_base = importlib.import_module("algo"), importlib.import_module("trainer_base")
    dit, ema = importlib.import_module("models.dit"), importlib.import_module("models.ema")
    cfg = duo_config(duo)
    torch.manual_seed(0)
    backbone = dit.DIT(cfg, vocab_size=vocab).to(device)
    methods = ("_loss", "_process_model_input", "nll", "_sample_t", "_sigma_from_alphat",
               "_process_sigma", "forward", "_process_model_output", "q_xt", "nll_per_token")
    cls = type("DuoUniformState", (), {m: getattr(algo.DUO_BASE, m) for m in methods})
    train = cfg.main.training
    duo_obj = cls()
    vars(duo_obj).update(
        backbone=backbone, vocab_size=vocab, device=device, T=0, time_conditioning=True,
        noise=trainer_base.LogLinear(float(cfg.noise.eps)), sampling_eps=float(train.sampling_eps),
        antithetic_sampling=bool(train.antithetic_sampling), ignore_bos=False, loss_type="elbo",
        class_conditional=False, parameterization=cfg.algo.parameterization)
    o = cfg.main.optim                     # YAML reads 3e-4 as a string: float() throughout
    opt = torch.optim.AdamW(backbone.parameters(), lr=float(o.lr), eps=float(o.eps),
                            betas=(float(o.beta1), float(o.beta2)),
                            weight_decay=float(o.weight_decay))
    shadow = ema.ExponentialMovingAverage(backbone.parameters(), decay=float(train.ema))
    return {"duo": duo_obj, "opt": opt, "ema": shadow, "cfg": cfg, "device": device}


def duo_step(state: dict, x0: torch.Tensor, valid: torch.Tensor, amp) -> float:
    """Duo's training_step (its ``_loss``) under Lightning-style autocast, then backward, clip,
    AdamW and Duo's EMA update."""
    duo, device = state["duo"], state["device"]
    state["opt"].zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = duo._loss(x0, None, valid, None, train_mode=True).loss
    loss.backward()
    float(torch.nn.utils.clip_grad_norm_(duo.backbone.parameters(), 1.0))
    state["opt"].step()
    state["ema"].update(duo.backbone.parameters())
    return float(loss.detach())


def _shape_row(side: str, args, cfg, params: int, step_s: float, device) -> dict:
    from train_throughput import peak_memory_gib

    return {"side": side, "batch": args.batch, "length": args.length, "vocab": args.vocab,
            "hidden": cfg["hidden"], "blocks": cfg["blocks"], "heads": cfg["heads"],
            "cond_dim": cfg["cond_dim"], "dropout": cfg["dropout"], "parameters": params,
            "precision": args.precision, "device": str(device), "step_s_median": step_s,
            "tokens_per_s": args.batch * args.length / step_s, **peak_memory_gib(device)}


def measure_duo(args, device, amp) -> dict:
    from train_throughput import time_steps

    stubbed = prepare_imports(Path(args.duo).expanduser())
    state = duo_state(Path(args.duo).expanduser(), args.vocab, device)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, args.vocab, (args.batch, args.length), generator=gen).to(device)
    valid = torch.ones_like(x0)
    step_s = time_steps(lambda: duo_step(state, x0, valid, amp), device, args.steps, args.warmup)
    m = state["cfg"].model
    shape = {"hidden": m.hidden_size, "blocks": m.n_blocks, "heads": m.n_heads,
             "cond_dim": m.cond_dim, "dropout": m.dropout}
    params = sum(p.numel() for p in state["duo"].backbone.parameters())
    return {**_shape_row("duo", args, shape, params, step_s, device), "stubbed": stubbed}


def measure_attractor(args, device, amp) -> dict:
    from train_throughput import attractor_state, attractor_step, model_config, time_steps

    cfg = model_config("tiny", None)
    state = attractor_state(cfg, args.vocab, device)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, args.vocab, (args.batch, args.length), generator=gen)
    step_s = time_steps(lambda: attractor_step(state, x0, gen, amp, args.loss), device,
                        args.steps, args.warmup)
    shape = {k: getattr(cfg, k) for k in ("hidden", "blocks", "heads", "cond_dim", "dropout")}
    params = sum(p.numel() for p in state["model"].parameters())
    return {**_shape_row("attractor", args, shape, params, step_s, device), "loss": args.loss,
            "malloc": state["allocator"]}


def allocators(spec: str) -> dict[str, list[str]]:
    """``duo=jemalloc-nodecay,duo=glibc-kept,attractor=default`` -> {side: [allocators]}, each
    side's in the order given; ``default`` where a side is not named."""
    out: dict[str, list[str]] = {"duo": [], "attractor": []}
    for part in filter(None, spec.split(",")):
        side, _, name = part.partition("=")
        if side not in out or name not in ALLOCATORS:
            raise SystemExit(f"--allocators: {part!r} is not SIDE=ALLOCATOR with SIDE duo or "
                             f"attractor and ALLOCATOR one of {', '.join(ALLOCATORS)}")
        out[side].append(name)
    return {side: names or ["default"] for side, names in out.items()}


def child_env(allocator: str) -> dict:
    """The environment of a child process running with ``allocator``: ``default``, nothing
    preloaded or set (attractor: what `attractor train` does, glibc keeping freed memory by
    its own mallopt; Duo: plain glibc); ``glibc``, plain glibc on both sides
    (ATTRACTOR_MALLOC=system); ``glibc-kept``, glibc keeping freed memory on both sides (the
    same settings through glibc's environment variables); or a preloaded jemalloc / tcmalloc."""
    from _allocators import find_library, preload_env

    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "MALLOC_CONF", "ATTRACTOR_MALLOC", "MALLOC_MMAP_MAX_",
                        "MALLOC_TRIM_THRESHOLD_")}
    if allocator == "default":
        return env
    if allocator == "glibc":
        return {**env, "ATTRACTOR_MALLOC": "system"}
    if allocator == "glibc-kept":                    # = attractor.device.keep_freed_memory
        return {**env, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
    path = find_library(allocator.split("-")[0])
    if path is None:
        raise SystemExit(f"{allocator} is not installed here (e.g. apt-get install libjemalloc2)")
    if allocator == "jemalloc-nodecay":                  # freed pages are never returned
        env["MALLOC_CONF"] = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    return preload_env(path, env)


def run_child(args, side: str, allocator: str) -> dict:
    cmd = [sys.executable, __file__, "--one", side, "--duo", str(args.duo), "--loss", args.loss]
    for flag in ("batch", "length", "vocab", "steps", "warmup", "device", "precision"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(allocator))
    if done.returncode:
        raise SystemExit(f"the {side} process failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "allocator": allocator}


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _checkout_commit(duo: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(duo), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return done.stdout.strip() or None


def _peaks(device: str) -> dict:
    """GFLOP/s of 2048^3 products in bf16 and fp32 (``train_throughput.matmul_peak``)."""
    from train_throughput import matmul_peak

    return {name: matmul_peak(dtype, 2048, 2.0, device) / 1e9
            for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))}


def _summary(rounds: list[dict]) -> dict:
    """Median tokens/s of every side and allocator; Duo's best allocator against attractor's
    default (its first)."""
    medians: dict[str, dict[str, float]] = {"duo": {}, "attractor": {}}
    for row in (row for r in rounds for row in r["runs"]):
        medians[row["side"]].setdefault(row["allocator"], []).append(row["tokens_per_s"])
    medians = {s: {a: _median(v) for a, v in m.items()} for s, m in medians.items()}
    best = max(medians["duo"], key=medians["duo"].get)
    ours = next(iter(medians["attractor"]))
    return {"tokens_per_s_median": medians, "duo_best": best, "attractor_default": ours,
            "duo_tokens_per_s_median": medians["duo"][best],
            "attractor_tokens_per_s_median": medians["attractor"][ours],
            "attractor_over_duo": medians["attractor"][ours] / medians["duo"][best]}


def compare(args) -> dict:
    """``args.rounds`` rounds, each (side, allocator) once per round, the order reversed every
    other round; the matmul peaks of the machine measured before and after them."""
    peaks = [_peaks(args.device)]
    plan = [(side, a) for side, names in allocators(args.allocators).items() for a in names]
    rounds = []
    for r in range(args.rounds):
        order = plan if r % 2 == 0 else plan[::-1]
        runs = [run_child(args, side, a) for side, a in order]
        rounds.append({"runs": runs})
        print(f"round {r + 1}: " + "  ".join(f"{row['side']} ({row['allocator']}) "
                                             f"{row['tokens_per_s']:.0f} tok/s" for row in runs),
              flush=True)
    summary = _summary(rounds)
    peaks.append(_peaks(args.device))
    summary["matmul_peak_gflops"] = {k: max(p[k] for p in peaks) for k in peaks[0]}
    duo = Path(args.duo).expanduser()
    return {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch": torch.__version__, "threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
            "duo": {"checkout": str(duo), "commit": _checkout_commit(duo),
                    "stubbed": next(row["stubbed"] for row in rounds[0]["runs"]
                                    if row["side"] == "duo")},
            "allocators": allocators(args.allocators),
            "step": "noising, forward, fp32 loss, backward, clip 1.0, AdamW, EMA; dropout 0.1",
            "rounds": rounds, "summary": summary}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duo", help="a local checkout of github.com/s-sahoo/duo")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=50258)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--loss", default="auto",
                        choices=("auto", "logits", "fused", "recompute"),
                        help="attractor's head (auto: what `attractor train` picks)")
    parser.add_argument("--allocators", default="",
                        help="malloc of each side, repeatable, e.g. duo=jemalloc-nodecay,"
                             "duo=glibc-kept,attractor=default (one of "
                             f"{', '.join(ALLOCATORS)}; default: default; the first attractor "
                             "entry is the one compared with Duo's best)")
    parser.add_argument("--out", default=str(RESULTS / "peer_duo.json"))
    parser.add_argument("--one", choices=("duo", "attractor"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.duo:
        raise SystemExit(HOW_TO_GET)
    if args.one:                               # child process: one side, JSON on stdout
        from train_throughput import device_of

        from attractor.device import resolve_precision

        device = device_of(args.device)
        amp = resolve_precision(args.precision, device)
        args.precision = "bf16" if amp else "fp32"
        measure = measure_duo if args.one == "duo" else measure_attractor
        print(json.dumps(measure(args, device, amp)))
        return
    result = compare(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = result["summary"]
    print(f"attractor ({summary['attractor_default']}) / Duo's best ({summary['duo_best']}) "
          f"tokens per second: {summary['attractor_over_duo']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
