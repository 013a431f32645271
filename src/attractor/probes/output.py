"""Writing probe results into ``RUN_DIR/probes/`` and rendering its report.

RUN_DIR/probes/
    <name>.json            settings, aggregate metrics with 95% bootstrap intervals, timing
    <name>.jsonl           one row per sequence (and noise level) or generated sample
    <name>*.png            figures, drawn from <name>.json alone
    <name>_examples.json   recovery only: token strings of a few sequences, marked
    <name>_examples.html   recovery only: those examples as a page (Figs. 1A, 3A)
    results.json           {"kind": "probes", "probes": [...]}: what ``attractor report`` renders
    report.html            every probe present, on one self-contained page

``<name>`` is ``recovery_deterministic``, ``recovery_stochastic``, ``entropy`` or ``generate``.
A probe never replaces existing results unless asked to (``overwrite``).
"""

from __future__ import annotations

from pathlib import Path

from attractor.errors import require
from attractor.io import read_json, write_json, write_jsonl
from attractor.probes import examples as ex
from attractor.probes import figures

PROBE_NAMES = ("recovery_deterministic", "recovery_stochastic", "entropy", "generate")


def probes_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "probes"


def check_writable(run_dir: str | Path, names, overwrite: bool) -> None:
    """A one-line error, before any work, if a probe's results exist and ``overwrite`` is off."""
    for name in names:
        path = probes_dir(run_dir) / f"{name}.json"
        require(overwrite or not path.exists(),
                f"{path} already exists; pass --overwrite to replace it")


def _figures(name: str, data: dict, out: Path) -> list[Path]:
    if name.startswith("recovery"):
        paths = [figures.recovery_curves(data, out / f"{name}.png")]
        if data["experiment"] == "stochastic":
            paths.append(figures.entropy_by_recovery(data, out / f"{name}_entropy.png"))
        return paths
    if name == "entropy":
        return [figures.entropy_histograms(data, out / "entropy.png")]
    return [figures.generate_figures(data, out / "generate.png")]


def write_probe(run, result, overwrite: bool = False, figures_on: bool = True) -> Path:
    """Write ``result`` (a RecoveryResult, EntropyResult or GenerateResult) for ``run``."""
    name = result.name if hasattr(result, "name") else "entropy"
    check_writable(run.directory, [name], overwrite)
    out = probes_dir(run.directory)
    out.mkdir(exist_ok=True)
    payload = {**result.to_dict(), "run": str(run.directory), "checkpoint_step": run.step,
               "num_train": len(run.train_ids), "device": str(run.device),
               "precision": run.precision}
    path = write_json(out / f"{name}.json", payload)
    write_jsonl(out / f"{name}.jsonl", result.rows)
    data = read_json(path)                        # figures see exactly what is on disk
    if figures_on:
        _figures(name, data, out)
    if name.startswith("recovery"):
        records = ex.to_records(result.examples, run.tokenizer)
        write_json(out / f"{name}_examples.json", records)
        ex.write_examples_page(out / f"{name}_examples.html", records,
                               f"Recovery examples: {result.config.experiment} retrieval",
                               data["level_name"], summary_rows(name, data))
    present = [n for n in PROBE_NAMES if (out / f"{n}.json").is_file()]
    write_json(out / "results.json", {"kind": "probes", "run": str(run.directory),
                                      "probes": present})
    from attractor.probes.report import render_report

    render_report(out)
    return path


def _ci(stat: dict | None, digits: int = 3) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    lo, hi = stat.get("lo"), stat.get("hi")
    band = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{stat['mean']:.{digits}f}{band}"


def summary_rows(name: str, data: dict) -> list[dict]:
    """Table rows (strings with 95% intervals) summarising one probe's JSON."""
    if name.startswith("recovery"):
        key = data["level_name"]
        rows = []
        for e in data["summary"]:
            row = {key: e[key], "train recovery": _ci(e["train"]["recovery"]),
                   "test recovery": _ci(e["test"]["recovery"]),
                   "train preserved": _ci(e["train"]["preserved"]),
                   "test preserved": _ci(e["test"]["preserved"]),
                   "AUROC train vs test": e["auroc_train_vs_test"]}
            if data["experiment"] == "stochastic":
                for split in ("train", "test"):
                    row[f"{split} H recovered"] = _ci(e[split]["entropy_recovered"])
                    row[f"{split} H unrecovered"] = _ci(e[split]["entropy_unrecovered"])
            rows.append(row)
        return rows
    if name == "entropy":
        return [{"t": e["t"], "train H (nats)": _ci(e["train"], 2), "test H (nats)": _ci(e["test"], 2),
                 "train H/log K per token": _ci(e["train_token_normalised"]),
                 "test H/log K per token": _ci(e["test_token_normalised"]),
                 "AUROC train vs test": e["auroc_train_vs_test"]} for e in data["summary"]]
    s = data["summary"]
    rows = [{"quantity": f"sequence entropy, {k} (nats)", "value": _ci(v, 2)}
            for k, v in s["entropy"].items()]
    rows += [{"quantity": "entropy gap generated - train (nats)", "value": _ci(s["entropy_gap"], 2)},
             {"quantity": "AUROC generated vs train entropy", "value": s["auroc_generated_vs_train"]},
             {"quantity": "exact copies", "value": _ci(s["exact_copy"])},
             {"quantity": "exact or near copies", "value": _ci(s["near_or_exact_copy"])},
             {"quantity": "equal to a held-out sequence", "value": s["matches_test_sequence"]},
             {"quantity": "grammatical (generated)", "value": s["grammatical"]},
             {"quantity": "grammatical (held-out, ceiling)", "value": s["test_grammatical"]}]
    rows += [{"quantity": f"fraction {k}", "value": v} for k, v in s["categories"].items()]
    return rows
