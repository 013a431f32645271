"""The tables of a sweep's report, as rows of strings, from ``analysis.json`` alone."""

from __future__ import annotations

from attractor.probes.tables import ci

STATUS_TEXT = {"left_censored": "at or below the smallest size",
               "right_censored": "not reached by the largest size",
               "not_identified": "not identified: the entropies never separated"}


def size(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def estimate_text(e: dict) -> tuple[str, str]:
    """(value, 95% interval) of a transition estimate, censoring spelled out."""
    if e["status"] == "estimated":
        value = size(e["value"])
    elif e["status"] == "left_censored":
        value = f"≤ {size(e['value'])} (left-censored)"
    else:
        value = STATUS_TEXT[e["status"]]
    lo = "≤ smallest" if e["lo_censored"] else size(e["lo"])
    hi = "beyond the largest" if e["hi_censored"] else size(e["hi"])
    return value, f"{lo} – {hi}"


def _range_text(span) -> str:
    return "–" if span is None else f"{10 ** span[0]:,.0f} – {10 ** span[1]:,.0f}"


def transition_rows(analysis: dict) -> list[dict]:
    """Per model: both estimates at the default thresholds, their range over the threshold
    grids, and how far apart they are."""
    rows = []
    for model, tr in analysis["transitions"].items():
        ag = tr["agreement"]
        for key, name, span in (("recovery", "recovery crossing", "recovery_log10_range"),
                                ("entropy_only", "entropy-only (no held-out data)",
                                 "entropy_log10_range")):
            e = tr[key]["default"]
            value, band = estimate_text(e)
            reps = ", ".join(f"{k.replace('_', ' ')} {v:.0%}" for k, v in e["replicates"].items()
                             if v)
            rows.append({"model": model, "estimate": name, "training size": value,
                         "95% interval": band, "interval covers": e["covers"],
                         "bootstrap replicates": reps,
                         "over its threshold grid (estimated)": _range_text(ag[span]),
                         "criterion": e["criterion"]})
        apart = ("–" if ag["log10_ratio"] is None else
                 f"{ag['log10_ratio']:+.2f} decades, intervals "
                 f"{'overlap' if ag['intervals_overlap'] else 'disjoint'}")
        grid = ("–" if ag.get("ranges_overlap") is None else
                f"ranges {'overlap' if ag['ranges_overlap'] else 'do not overlap'}; at most "
                f"{ag['largest_log10_distance']:.2f} decades apart")
        rows.append({"model": model, "estimate": "agreement", "training size": apart,
                     "95% interval": ag.get("note", ""), "interval covers": "",
                     "bootstrap replicates": "", "over its threshold grid (estimated)": grid,
                     "criterion": ""})
    return rows


def per_size_rows(analysis: dict) -> list[dict]:
    rows = []
    for r in analysis["per_size"]:
        cats = r.get("generated_categories") or {}
        nelbo = [f"{v:.3f}" if v is not None else "–" for v in (r["train_nelbo"], r["test_nelbo"])]
        rows.append({
            "model": r["model"], "n train": r["num_train"], "seeds": len(r["seeds"]),
            "NELBO train / test": " / ".join(nelbo),
            f"recovery train (t={r['t']:g})": ci(r["train_recovery"]),
            "recovery test": ci(r["test_recovery"]),
            "unigram denoiser": r["unigram_recovery"],
            "token entropy train": ci(r["train_token_entropy"]),
            "token entropy generated": ci(r["generated_token_entropy"]),
            "gap": ci(r["token_entropy_gap"]),
            "KS train vs gen": ci(r["ks_train_vs_generated"]),
            "copies / novel valid / invalid":
                f"{(cats.get('exact_copy') or 0) + (cats.get('near_copy') or 0):.2f} / "
                f"{cats.get('novel_grammatical') or 0:.2f} / "
                f"{cats.get('novel_ungrammatical') or 0:.2f}",
            "intervals cover": r["covers"],
        })
    return rows


def membership_rows(analysis: dict) -> list[dict]:
    """Per (model, size): the AUROC of every membership score and the best one's TPR at 1% FPR."""
    rows = []
    for r in analysis["per_size"]:
        m = r["membership"]
        row = {"model": r["model"], "n train": r["num_train"]}
        row.update({f"AUROC {k}": ci(v["auroc"]) for k, v in m["scores"].items()})
        best = m["best"]["best"]
        if best is not None:
            tpr = m["scores"][best]["tpr_at_fpr_0.01"]
            row["best score"] = best + (f" (not told apart from "
                                        f"{', '.join(m['best']['indistinguishable'])})"
                                        if m["best"]["indistinguishable"] else "")
            row["its TPR at 1% FPR"] = ci(tpr) + (" (at FPR 0)" if tpr["at_fpr_zero"] else "")
        row["intervals cover"] = r["covers"]
        rows.append(row)
    return rows
