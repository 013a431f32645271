"""One prepared GPU benchmark run: training and probe throughput on CUDA, then on 2 GPUs.

Stages, each in its own process(es), in this order (``--stages`` picks some):
    train    benchmarks/train_throughput.py on one GPU: tiny and small at K = 50,258, bf16 and
             fp32, heads auto / logits / recompute and the reference loss, batch 64, L = 128,
             the configs' dropout
    probes   benchmarks/probe_throughput.py on one GPU (tiny, GPT-2 tokenizer, L = 128)
    cli      ``attractor train`` as users run it (tiny, GPT-2 tokenizer, L = 128, its defaults
             otherwise) on one GPU, and with torchrun on two when more than one is visible (the
             same batch per GPU); tokens/s from metrics.jsonl, the first logging window dropped
    peer     benchmarks/peer_duo.py on one GPU, only with ``--duo PATH``
Writes benchmarks/results/gpu.json, again after every stage, so a stage that fails or times out
leaves the others' results (its own entry says why).

``--dry-run`` runs every stage's code path on the CPU at tiny sizes (nano, K = 64; the two-process
stage with gloo) in well under a minute and writes to a temporary directory unless ``--out`` is
given; tests/test_benchmarks.py runs it so.

    python benchmarks/gpu.py [--stages train probes cli] [--duo ~/src/duo]
    python benchmarks/gpu.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
STAGES = ("train", "probes", "cli", "peer")

# Per-stage sizes of the real run and of the dry run.
SIZES = {
    False: {"train": ["--configs", "tiny:50258", "small:50258", "--precisions", "bf16", "fp32",
                      "--losses", "auto", "logits", "recompute", "reference", "--batch", "64",
                      "--length", "128", "--steps", "10", "--warmup", "3", "--allocators", "glibc",
                      "--rounds", "1"],
            "probes": ["--model", "tiny", "--tokenizer", "gpt2", "--sequences", "32"],
            "cli": ["--model", "tiny", "--tokenizer", "gpt2", "--block-length", "128",
                    "--corpus-size", "3000", "--num-train", "2048", "--test-size", "64",
                    "--steps", "60", "--log-every", "20", "--eval-every", "60",
                    "--checkpoint-every", "60", "--eval-sequences", "16"],
            "cli_batch_per_gpu": 64,
            "probe": ["--num-sequences", "64", "--times", "0.1,0.25,0.5", "--reverse-steps",
                      "50"],
            "peer": ["--batch", "64", "--length", "128", "--steps", "10", "--warmup", "3"]},
    True: {"train": ["--configs", "nano:64", "--precisions", "bf16", "--losses", "auto",
                     "logits", "recompute", "reference", "--batch", "2", "--length", "8", "--steps", "1",
                     "--warmup", "0", "--peak-size", "64", "--peak-seconds", "0.01",
                     "--allocators", "glibc"],
           "probes": ["--model", "nano", "--tokenizer", "word", "--block-length", "16",
                      "--sequences", "2", "--steps", "2", "--corpus-size", "200",
                      "--num-train", "32", "--precisions", "fp32"],
           "cli": ["--model", "nano", "--tokenizer", "word", "--block-length", "8",
                   "--corpus-size", "200", "--num-train", "32", "--test-size", "16",
                   "--steps", "4", "--log-every", "2", "--eval-every", "4",
                   "--checkpoint-every", "4", "--eval-sequences", "4", "--precision", "fp32"],
           "cli_batch_per_gpu": 4,
           "probe": ["--num-sequences", "2", "--times", "0.25", "--reverse-steps", "2",
                     "--bootstrap", "10"],
           "peer": ["--batch", "2", "--length", "8", "--vocab", "64", "--steps", "1",
                    "--warmup", "0", "--rounds", "2"]},
}
SCRIPTS = {"train": "train_throughput", "probes": "probe_throughput"}
TIMEOUT_S = {"train": 420, "probes": 300, "cli": 240, "peer": 420}


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "cuda_version": torch.version.cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda else []}


def run(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run ``cmd``; its exit status, wall time and, on failure, the end of its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=HERE.parent)
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", exc.stdout or "", exc.stderr or ""
        out, err = (v.decode() if isinstance(v, bytes) else v for v in (out, err))
    row = {"command": " ".join(cmd), "rc": rc, "wall_s": time.perf_counter() - start}
    if rc != 0:
        row["output_tail"] = (out + err)[-3000:]
    return row


def script_stage(script: str, args: list[str], device: str, timeout: float, tmp: Path) -> dict:
    """A benchmark script with its JSON written to ``tmp`` and read back into the row."""
    out = tmp / f"{script}.json"
    row = run([sys.executable, str(HERE / f"{script}.py"), *args, "--device", device,
               "--out", str(out)], timeout)
    if out.is_file():
        row["result"] = json.loads(out.read_text())
    return row


def cli_tokens_per_s(run_dir: Path) -> dict:
    """Median tokens/s of the logging windows of a run, the first one (warm-up) dropped."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    kept = sorted(rates[1:] or rates)
    return {"tokens_per_s_windows": rates, "tokens_per_s_median": kept[len(kept) // 2]}


def cli_stage(nproc: int, device: str, sizes: dict, timeout: float, tmp: Path) -> dict:
    """``attractor train`` on ``nproc`` processes (torchrun when more than one), the same batch
    per process."""
    run_dir = tmp / f"cli_{nproc}"
    batch = sizes["cli_batch_per_gpu"] * nproc
    cmd = [*launcher(nproc), "train", "--out", str(run_dir), *sizes["cli"], "--batch-size", str(batch),
           "--device", device, "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1") if device == "cpu" and nproc > 1 else None
    row = run(cmd, timeout, env)
    row.update(processes=nproc, batch=batch)
    if row["rc"] == 0:
        row.update(cli_tokens_per_s(run_dir))
    return row


def launcher(nproc: int) -> list[str]:
    """``python -m attractor``, under torchrun when more than one process."""
    return [sys.executable, "-m", "attractor"] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
        str(nproc), "-m", "attractor"]


def probe_stage(nproc: int, device: str, sizes: dict, timeout: float, tmp: Path) -> dict:
    """``attractor probe recovery --experiment stochastic`` on a copy of the one-process cli
    run, on ``nproc`` processes: wall time, items/s, and a digest of its rows (equal for any
    number of processes)."""
    import hashlib
    import shutil

    run_dir = Path(shutil.copytree(tmp / "cli_1", tmp / f"probe_{nproc}"))
    cmd = [*launcher(nproc), "probe", "recovery", str(run_dir), "--experiment", "stochastic",
           *sizes["probe"], "--device", device, "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1") if device == "cpu" and nproc > 1 else None
    row = run(cmd, timeout, env)
    row["processes"] = nproc
    if row["rc"] == 0:
        probes = run_dir / "probes"
        timing = json.loads((probes / "recovery_stochastic.json").read_text())["timing"]
        rows = (probes / "recovery_stochastic.jsonl").read_bytes()
        row.update(items=timing["sequences"], items_per_s=timing["sequences"] / row["wall_s"],
                   forward_fraction=timing["forward_fraction"],
                   rows_sha256=hashlib.sha256(rows).hexdigest())
    return row


def stage(name: str, args, sizes: dict, tmp: Path) -> dict:
    device, timeout = ("cpu" if args.dry_run else "cuda"), TIMEOUT_S[name]
    if name in SCRIPTS:
        return script_stage(SCRIPTS[name], sizes[name], device, timeout, tmp)
    if name == "cli":
        gpus = torch.cuda.device_count() if not args.dry_run else 2
        runs = [cli_stage(n, device, sizes, timeout, tmp) for n in (1, 2) if n <= gpus]
        probes = [probe_stage(n, device, sizes, timeout, tmp) for n in (1, 2)
                  if n <= gpus and runs[0]["rc"] == 0]
        return {"runs": runs, "probes": probes, "gpus_visible": gpus}
    if not args.duo:
        return {"skipped": "no --duo PATH given"}
    return script_stage("peer_duo", [*sizes["peer"], "--duo", args.duo], device, timeout, tmp)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="every code path on the CPU at tiny sizes, to a temporary file")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--duo", help="a Duo checkout for the peer stage (see peer_duo.py)")
    parser.add_argument("--out", help="default: benchmarks/results/gpu.json (dry run: a temporary "
                                      "directory)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu.py needs CUDA (or --dry-run to check it on the CPU)")
    out = Path(args.out) if args.out else (
        Path(tempfile.mkdtemp(prefix="gpu_dry_")) / "gpu.json" if args.dry_run
        else RESULTS / "gpu.json")
    result = {"machine": machine(), "dry_run": args.dry_run, "stages": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        for name in args.stages:
            print(f"stage {name} ...", flush=True)
            result["stages"][name] = stage(name, args, SIZES[args.dry_run], Path(tmp))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")
    failed = [n for n, s in result["stages"].items()
              if s.get("rc", 0) != 0 or any(r["rc"] != 0 for r in s.get("runs", []))]
    print(f"wrote {out}" + (f"; failed stages: {', '.join(failed)}" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
