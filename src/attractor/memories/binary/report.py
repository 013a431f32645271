"""HTML reports of the binary-memory sweeps, built only from the files in the output directory."""

from __future__ import annotations

import json
from pathlib import Path

from attractor.errors import require
from attractor.io import read_json
from attractor.report.html import figure, heading, paragraph, preformatted, table, write_page

TARGETS = ("train", "test", "features", "control")


def _load(out_dir: str | Path, kind: str) -> tuple[Path, dict]:
    out_dir = Path(out_dir)
    results = read_json(out_dir / "results.json")
    require(
        results.get("kind") == kind,
        f"{out_dir} holds {results.get('kind')!r} results, not {kind!r}",
    )
    return out_dir, results


def _figures(out_dir: Path, results: dict) -> list[str]:
    blocks = []
    for item in results.get("figures", []):
        path = out_dir / item["file"]
        if path.is_file():
            blocks.append(figure(path, item["caption"]))
        else:
            blocks.append(paragraph(f"(figure {item['file']} is missing)", "note"))
    return blocks


def _with_sd(summary: list[dict], columns: list[str]) -> list[dict]:
    """Rows of 'mean ± sd' strings for ``columns`` (means alone when one seed)."""
    rows = []
    for row in summary:
        shown: dict = {"alpha": row["alpha"], "P": round(row["P"])}
        for column in columns:
            if column not in row:
                continue
            sd = row.get(f"{column}_sd", 0.0)
            shown[column] = f"{row[column]:.3f} ± {sd:.3f}" if row["n_seeds"] > 1 else row[column]
        rows.append(shown)
    return rows


def _footer(results: dict) -> list[str]:
    return [
        heading("Configuration", 3),
        preformatted(json.dumps(results["config"], indent=2)),
        paragraph(
            f"Sweep time {results['seconds']:.1f} s; source revision {results.get('git')}.", "note"
        ),
    ]


def render_capacity_report(out_dir: str | Path) -> Path:
    out_dir, results = _load(out_dir, "am-capacity")
    config = results["config"]
    models = config["models"]
    blocks = [
        paragraph(
            f"N = {config['n']} neurons, random +-1 patterns, {config['n_seeds']} seeds per load, "
            f"{config['retrieval']['rule']} zero-temperature retrieval. Basin radius: the largest "
            "flipped fraction from which at least 90 % of "
            f"{config['retrieval']['n_trials']} trials end at overlap m > 0.95."
        ),
        *_figures(out_dir, results),
        heading("Per load (mean ± standard deviation over seeds)"),
    ]
    columns = ["kappa_gardner"]
    for model in models:
        columns += [f"{model}_radius", f"{model}_stable", f"{model}_kappa_min"]
    blocks.append(table(_with_sd(results["summary"], columns)))
    blocks.append(heading("Couplings", 3))
    coupling_columns = [f"{m}_{k}" for m in models for k in ("norm", "asymmetry", "cycles")]
    blocks.append(table(_with_sd(results["summary"], coupling_columns)))
    blocks += _footer(results)
    return write_page(out_dir / "report.html", "Binary associative memory: capacity", blocks)


def render_generalization_report(out_dir: str | Path) -> Path:
    out_dir, results = _load(out_dir, "am-generalization")
    config = results["config"]
    data = {
        "sparse": f"sparse random-features mixtures (D = {results['n_features']}, "
        f"L = {config['mixture_size']})",
        "dense": f"dense random features xi = sign(F z) (D = {results['n_features']})",
        "digits": "binarised 8x8 scikit-learn digits",
    }[config["data"]]
    n = results.get("n", config["n"])      # results written before N could be left out lack it
    blocks = [
        paragraph(
            f"N = {n} neurons, {data}, pseudo-likelihood memory (beta = "
            f"{config['training']['beta']}), {config['n_seeds']} seeds per load. Unseen test "
            "patterns never occur in the training set (nor do their negations)."
        ),
        *_figures(out_dir, results),
        heading("Final overlap from the target itself (m0 = 1)"),
    ]
    summary = results["summary"]
    blocks.append(table(_with_sd(summary, [f"pl_{t}_m1" for t in TARGETS])))
    blocks.append(heading("Basin radius and conditional entropy"))
    columns = [f"pl_{t}_radius" for t in TARGETS] + ["pl_train_entropy", "pl_test_entropy"]
    blocks.append(table(_with_sd(summary, columns)))
    if config.get("hebb"):
        blocks.append(heading("Hebbian baseline (m0 = 1)", 3))
        blocks.append(table(_with_sd(summary, [f"hebb_{t}_m1" for t in TARGETS])))
    blocks += _footer(results)
    return write_page(out_dir / "report.html", "Binary associative memory: generalization", blocks)
