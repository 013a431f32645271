"""``report.html`` of a sweep, rendered only from the files in the sweep directory."""

from __future__ import annotations

from pathlib import Path

from attractor.analysis import figures
from attractor.analysis.analyze import analyze_sweep
from attractor.io import read_json
from attractor.report.html import figure, heading, paragraph, preformatted, table, write_page

EXPECTATION = ("Paper's expectation (§5, Figs. 4-5): with few training sequences both the training "
               "and the generated entropies sit near 0 (memorisation); in the transition they "
               "separate; once generalised both are finite and their distributions overlap again, "
               "generated a little above train (the entropy gap).")


def _fmt(stat: dict | None) -> str:
    if not stat or stat.get("mean") is None:
        return "–"
    return f"{stat['mean']:.3f} [{stat['lo']:.3f}, {stat['hi']:.3f}]"


def _size(x) -> str:
    return "not reached" if x is None else f"{x:,.0f}"


def _transition_blocks(analysis: dict) -> list[str]:
    blocks = [heading("Where does the model stop memorising?"),
              paragraph("Two independent estimates of the transition, each with a 95% bootstrap "
                        "interval over sequences. The first needs held-out data (token recovery "
                        "of train vs test); the second uses only the model's own generations "
                        "(conditional entropy of train vs generated sequences).")]
    rows = []
    for model, m in analysis["models"].items():
        for key, est in (m["transitions"] or {}).items():
            if key == "agreement":
                continue
            rows.append({"model": model, "estimate": key, "training size": _size(est["value"]),
                         "95% interval": f"{_size(est['lo'])} – "
                                         f"{'beyond the grid' if est['hi'] is None else _size(est['hi'])}",
                         "replicates crossing": est["reached_fraction"],
                         "criterion": est["criterion"]})
        if m["transitions"]:
            ag = m["transitions"]["agreement"]
            rows.append({"model": model, "estimate": "agreement (entropy vs recovery)",
                         "training size": "–" if ag["log10_ratio"] is None
                         else f"{ag['log10_ratio']:+.2f} decades",
                         "95% interval": {True: "intervals overlap", False: "intervals disjoint",
                                          None: ag.get("note", "")}[ag["intervals_overlap"]],
                         "replicates crossing": "", "criterion": ""})
    return blocks + [table(rows)]


def _per_size_table(analysis: dict) -> str:
    rows = []
    for r in analysis["per_size"]:
        cats = r.get("generated_categories") or {}
        rows.append({
            "model": r["model"], "n train": r["num_train"],
            "NELBO train / test": f"{r['train_nelbo'] or float('nan'):.3f} / "
                                  f"{r['test_nelbo'] or float('nan'):.3f}",
            f"recovery train (t={r['t']:g})": _fmt(r["train_recovery"]),
            "recovery test": _fmt(r["test_recovery"]),
            "token entropy train": _fmt(r["train_token_entropy"]),
            "token entropy generated": _fmt(r["generated_token_entropy"]),
            "gap": _fmt(r["entropy_gap"]),
            "KS train vs gen": r["ks_train_vs_generated"],
            "membership AUROC": f"{r['membership_auroc']['auroc']:.3f} "
                                f"[{r['membership_auroc']['lo']:.3f}, "
                                f"{r['membership_auroc']['hi']:.3f}]",
            "Spearman(H, recovery)": r["spearman_entropy_vs_recovery"],
            "generated: copies / novel valid / invalid":
                f"{cats.get('exact_copy', 0) + cats.get('near_copy', 0):.2f} / "
                f"{cats.get('novel_grammatical', 0):.2f} / "
                f"{cats.get('novel_ungrammatical', 0):.2f}",
        })
    return table(rows)


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
        for probe, records in by_probe.items():
            level = "fraction" if probe.endswith("deterministic") else "t"
            blocks.append(heading(f"{name}: {probe.replace('_', ' ')}", 3))
            blocks += example_blocks(records, level)
    return blocks


def render_sweep_report(sweep_dir: str | Path) -> Path:
    """Analyse the sweep's files, draw every figure, and write SWEEP_DIR/report.html."""
    sweep_dir = Path(sweep_dir)
    analysis = analyze_sweep(sweep_dir)
    adir = sweep_dir / "analysis"
    cfg = read_json(sweep_dir / "sweep.json")["config"]
    t = analysis["settings"]["t_main"]
    figs = [
        ("Token recovery vs training size (Fig. 2): train solid, test dashed, 95% CI.",
         figures.recovery_vs_size(adir, adir / "fig2_recovery_vs_size.png")),
        ("Basins (Figs. 1/9): greedy recovery vs fraction of corrupted tokens.",
         figures.basins(adir, adir / "fig1_basins.png")),
        ("Average token entropy of training and generated sequences, and the gap (Fig. 5).",
         figures.entropy_vs_size(adir, adir / "fig5_entropy_vs_size.png")),
        ("Transition diagnostics: recovery gap (band: ±eps), KS distance of the entropy "
         "distributions, membership AUROC of low entropy.",
         figures.transition_diagnostics(analysis, adir / "transition_diagnostics.png")),
    ]
    for model in analysis["histograms"]:
        figs.append((f"{model}: entropy of recovered vs unrecovered tokens at t = {t:g} "
                     f"(Figs. 3B/12-14); filled: train, outline: test.",
                     figures.token_entropy_by_recovery(analysis, model, t,
                                                       adir / f"fig3b_{model}.png")))
        figs.append((f"{model}: sequence conditional entropy, train vs generated "
                     f"(Figs. 4/15-17).",
                     figures.sequence_entropy_histograms(analysis, model,
                                                         adir / f"fig4_{model}.png")))
    blocks = [paragraph(f"Corpus {cfg['data']['corpus']}, models {', '.join(cfg['models'])}, "
                        f"training sizes {', '.join(map(str, cfg['sizes']))}, {cfg['steps']} "
                        f"steps each, seed {cfg['seed']}."),
              *_transition_blocks(analysis), heading("Every training size"),
              paragraph(EXPECTATION, "note"), _per_size_table(analysis), heading("Figures")]
    blocks += [figure(path, caption) for caption, path in figs]
    blocks += _sample_blocks(analysis) + _example_blocks(analysis)
    blocks += [heading("Data behind the figures"),
               paragraph("analysis/analysis.json, recovery_vs_size.csv, basins.csv, "
                         "entropy_vs_size.csv and per_size.csv in this directory; each run's "
                         "probe files under runs/<name>/probes/."),
               heading("Sweep configuration", 3), preformatted(str(cfg))]
    return write_page(sweep_dir / "report.html", "Memorisation to generalisation: sweep report",
                      blocks)
