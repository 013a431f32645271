"""Writing probe results into ``RUN_DIR/probes/``.

RUN_DIR/probes/
    <name>.json            settings, aggregate metrics with 95% bootstrap intervals, timing, and
                           the run, checkpoint step, device and precision they were measured at
    <name>.jsonl           one row per sequence (and noise level) or generated sample
    <name>_examples.json   a few sequences as marked token strings (probes that keep examples)
    results.json           {"kind": "probes", "run": ..., "probes": [the names present]}

Each probe writes its rows, its examples and results.json first and its JSON last, so that a
process killed at any point leaves either a complete probe (its JSON present) or one that is
run again; only report.html may then be stale, and ``attractor report`` renders it again.

``<name>`` is a key of :data:`attractor.probes.registry.PROBES`. ``report.html`` is rendered from
these files by ``attractor report`` (:mod:`attractor.probes.report`). A probe never replaces
existing results unless asked to (``overwrite``).
"""

from __future__ import annotations

from pathlib import Path

from attractor.errors import require
from attractor.io import make_dir, write_json, write_jsonl
from attractor.probes import examples as ex
from attractor.probes.common import ProbeResult
from attractor.probes.registry import PROBES


def probes_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "probes"


def check_writable(run_dir: str | Path, names, overwrite: bool) -> None:
    """A one-line error, before any work, if a probe's results exist and ``overwrite`` is off."""
    for name in names:
        path = probes_dir(run_dir) / f"{name}.json"
        require(overwrite or not path.exists(),
                f"{path} already exists; pass --overwrite to replace it")


def write_probe(run, name: str, result: ProbeResult, overwrite: bool = False) -> Path:
    """Write the result of probe ``name`` on ``run``; returns the path of its JSON."""
    check_writable(run.directory, [name], overwrite)
    out = make_dir(probes_dir(run.directory))
    write_jsonl(out / f"{name}.jsonl", result.rows)
    if result.examples:
        write_json(out / f"{name}_examples.json", ex.to_records(result.examples, run.tokenizer))
    payload = {"probe": name, **result.to_dict(), "run": str(run.directory),
               "family": run.family, "source": run.source, "checkpoint_step": run.step,
               "num_train": len(run.train_ids), "num_test": len(run.test_ids),
               "device": str(run.device), "precision": run.precision}
    present = [n for n in PROBES if n == name or (out / f"{n}.json").is_file()]
    write_json(out / "results.json", {"kind": "probes", "run": str(run.directory),
                                      "probes": present})
    return write_json(out / f"{name}.json", payload)   # last: its presence means complete
