"""``report.html`` of a sweep, rendered only from the files in the sweep directory.

The sweep writes ``analysis/`` (:mod:`attractor.analysis.analyze`) after its runs; this page
only reads it, draws the figures in memory and writes ``report.html``.
"""

from __future__ import annotations

from pathlib import Path

from attractor.analysis import figures, tables
from attractor.errors import require
from attractor.io import read_json
from attractor.probes import figures as probe_figures
from attractor.report.html import figure, heading, paragraph, preformatted, table, write_page

EXPECTATION = ("Paper's expectation (§5, Figs. 4-5): with few training sequences both the training "
               "and the generated entropies sit near 0 (memorisation); in the transition they "
               "separate; once generalised both are finite and their distributions overlap again, "
               "generated a little above train (the entropy gap).")


FAMILIES_NOTE = (
    "Families compared on the same data, training sizes, seeds and transformer: uniform "
    "(the paper's uniform-state diffusion), masked (absorbing-state, MDLM-style; its rows are "
    "labelled 'masked'), ar (the autoregressive baseline, causal; 'ar'). Each family's probes "
    "are its own analogues: masked recovery is infilling (masked tokens restored by its "
    "unmasking) and its entropy the leave-one-out entropy; autoregressive recovery resamples the "
    "corrupted positions, known to the probe, left to right, and its entropy is the "
    "next-token entropy. Numbers compare within a family across sizes; across families they "
    "measure different things (docs/probes.md).")


def _transition_blocks(analysis: dict) -> list[str]:
    return [heading("Where does the model stop memorising?"),
            paragraph("Two independent estimates of the transition. The first needs held-out "
                      "data (token recovery of train vs test); the second uses only the model's "
                      "own generations (conditional entropy of train vs generated sequences). "
                      "Each is computed over the training sizes every seed has finished, and "
                      "also over a grid of thresholds (figure below): an estimate that moves "
                      "with its threshold is only as precise as that range. A censored "
                      "estimate lies outside the grid of sizes; 'not identified' means there "
                      "was no transition to place."),
            table(tables.transition_rows(analysis))]


def _membership_blocks(analysis: dict) -> list[str]:
    return [heading("Which score tells training sequences from unseen ones?"),
            paragraph("Per-sequence membership scores (higher = member): minus the conditional "
                      "entropy (the paper's probe), minus the NELBO (the loss attack), Min-K% "
                      "log-probability, minus the zlib-calibrated NELBO, and token recovery at "
                      "the transition's t. AUROC 0.5 is chance. A TPR 'at FPR 0' means the "
                      "held-out sequences were too few to resolve the target rate.", "note"),
            table(tables.membership_rows(analysis))]


def _sample_blocks(analysis: dict) -> list[str]:
    blocks = [heading("Generated samples")]
    for name, samples in analysis["samples"].items():
        rows = [{"text": s["text"], "category": s["category"],
                 "Hamming to nearest train": f"{s['distance']}/{s['compared']}",
                 "sequence entropy": s["sequence_entropy"]} for s in samples[:4]]
        blocks += [heading(name, 3), table(rows)]
    return blocks


def _example_blocks(analysis: dict) -> list[str]:
    from attractor.probes.examples import example_blocks

    blocks = [heading("Recovery examples (Figs. 1A, 3A)")]
    for name, by_probe in analysis["examples"].items():
        for probe, shown in by_probe.items():
            blocks.append(heading(f"{name}: {probe.replace('_', ' ')}", 3))
            blocks += example_blocks(shown["records"], shown["level_name"])
    return blocks


def _figure_blocks(sweep_dir: Path, analysis: dict) -> list[str]:
    adir, t = sweep_dir / "analysis", analysis["settings"]["t_main"]
    figs = [
        ("Token recovery vs training size (Fig. 2): train solid, test dashed, 95% CI.",
         figures.recovery_vs_size(adir)),
        ("Basins (Figs. 1/9): zero-temperature recovery vs fraction of corrupted tokens.",
         figures.basins(adir)),
        ("Average token entropy of training and generated sequences, and the gap (Fig. 5).",
         figures.entropy_vs_size(analysis)),
        ("Transition diagnostics: recovery gap (band: ±eps), KS distance of the entropy "
         "distributions, membership AUROC of low entropy; 95% intervals.",
         figures.transition_diagnostics(analysis)),
        ("Each transition estimate against its threshold, with 95% intervals; hollow markers: "
         "censored (drawn at the edge of the grid).", figures.threshold_curves(analysis)),
        ("Membership AUROC of every score against training size.",
         figures.membership_vs_size(analysis)),
    ]
    for name, scores in analysis["roc"].items():
        figs.append((f"{name}: ROC of each membership score of its entropy probe, log-log "
                     "(intervals over sequences in that run's report).",
                     probe_figures.roc_curves(scores)))
    for series in analysis["histograms"]:
        figs.append((f"{series}: entropy of recovered vs unrecovered tokens at t = {t:g} "
                     f"(Figs. 3B/12-14); filled: train, outline: test.",
                     figures.token_entropy_by_recovery(analysis, series, t)))
        figs.append((f"{series}: sequence conditional entropy, train vs generated "
                     f"(Figs. 4/15-17).", figures.sequence_entropy_histograms(analysis, series)))
    return [heading("Figures")] + [figure(png, caption) for caption, png in figs]


def render_sweep_report(sweep_dir: str | Path) -> Path:
    """Write SWEEP_DIR/report.html from sweep.json and the analysis the sweep wrote."""
    sweep_dir = Path(sweep_dir)
    require((sweep_dir / "analysis" / "analysis.json").is_file(),
            f"{sweep_dir} has no analysis yet; run the sweep (attractor sweep --out {sweep_dir} "
            "--resume-config) to finish its runs and write it")
    analysis = read_json(sweep_dir / "analysis" / "analysis.json")
    require(len(analysis["per_size"]) > 0, f"{sweep_dir} has no finished runs with probes: "
            "nothing to report")
    cfg = read_json(sweep_dir / "sweep.json")["config"]
    train = cfg["train"]
    blocks = [paragraph(f"Corpus {train['data']['corpus']}, families "
                        f"{', '.join(cfg.get('families', ['uniform']))}, models "
                        f"{', '.join(cfg['models'])}, "
                        f"training sizes {', '.join(map(str, cfg['sizes']))}, seeds "
                        f"{', '.join(map(str, cfg['seeds']))}, {train['steps']} steps each.")]
    if len(cfg.get("families", ["uniform"])) > 1:
        blocks.append(paragraph(FAMILIES_NOTE, "note"))
    if analysis["missing"]:
        blocks.append(paragraph(f"Not finished yet, so not in this report: "
                                f"{', '.join(analysis['missing'])}.", "note"))
    blocks += [*_transition_blocks(analysis), heading("Every training size"),
               paragraph(EXPECTATION, "note"), table(tables.per_size_rows(analysis)),
               *_membership_blocks(analysis)]
    blocks += _figure_blocks(sweep_dir, analysis)
    blocks += _sample_blocks(analysis) + _example_blocks(analysis)
    blocks += [heading("Data behind the figures"),
               paragraph("analysis/analysis.json, per_size.csv, per_run.csv, "
                         "recovery_vs_size.csv and basins.csv in this directory; each run's "
                         "probe files (and its own report, intervals over sequences) under "
                         "runs/<name>/probes/."),
               heading("Sweep configuration", 3), preformatted(str(cfg))]
    return write_page(sweep_dir / "report.html", "Memorisation to generalisation: sweep report",
                      blocks)
