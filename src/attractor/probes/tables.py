"""Summary tables of the probes, from their saved JSON alone: rows of strings with 95% intervals.

Each public function returns [(caption, rows)], one entry per table.
"""

from __future__ import annotations


def ci(stat: dict | None, digits: int = 3) -> str:
    """``mean [lo, hi]`` of a summary dict, "–" when undefined."""
    if not stat or stat.get("mean") is None:
        return "–"
    lo, hi = stat.get("lo"), stat.get("hi")
    band = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{stat['mean']:.{digits}f}{band}"


def recovery(data: dict) -> list[tuple[str, list[dict]]]:
    """One row per corruption level: recovery, preservation and entropies of both splits."""
    key, rows = data["level_name"], []
    for e in data["summary"]:
        row = {key: e[key]}
        for split in ("train", "test"):
            row[f"{split} recovery"] = ci(e[split]["recovery"])
        if "unigram_recovery" in e["test"]:
            row["unigram denoiser (test)"] = ci(e["test"]["unigram_recovery"])
        for split in ("train", "test"):
            row[f"{split} preserved"] = ci(e[split]["preserved"])
        if "fixed_point" in e["train"]:
            for split in ("train", "test"):
                row[f"{split} fixed points / cycles"] = (
                    f"{ci(e[split]['fixed_point'], 2)} / {ci(e[split]['cycle'], 2)}")
        row["AUROC train vs test"] = e["auroc_train_vs_test"]
        for split in ("train", "test"):
            row[f"{split} H recovered"] = ci(e[split]["entropy_recovered"])
            row[f"{split} H unrecovered"] = ci(e[split]["entropy_unrecovered"])
        rows.append(row)
    return [("token recovery (95% intervals over sequences)", rows)]


def membership(scores: dict) -> list[dict]:
    """One row per membership score: AUROC and TPR at 1% and 0.1% FPR with 95% intervals."""
    rows = []
    for name, e in scores.items():
        row = {"score": name, "AUROC": ci(e["auroc"])}
        for key, value in e.items():
            if key.startswith("tpr_at_fpr_"):
                note = " (at FPR 0)" if value.get("at_fpr_zero") else ""
                row[f"TPR at FPR {key[11:]}"] = ci(value) + note
        rows.append(row)
    return rows


def entropy(data: dict) -> list[tuple[str, list[dict]]]:
    """Entropies per time t, and every membership score of training vs test sequences."""
    rows = [{"t": e["t"], "train H (nats)": ci(e["train"], 2), "test H (nats)": ci(e["test"], 2),
             "train H per token": ci(e["train_token"]), "test H per token": ci(e["test_token"]),
             "membership AUROC (low H)": ci(e["membership_auroc"])} for e in data["summary"]]
    m = data["membership"]
    best = m["best"]
    caption = (f"membership scores, training vs held-out sequences (higher = member); best: "
               f"{best['best']}" + (f", not told apart from {', '.join(best['indistinguishable'])}"
                                   if best["indistinguishable"] else ""))
    return [("conditional entropy of clean sequences (eq. 13)", rows),
            (caption, membership(m["scores"]))]


def generate(data: dict) -> list[tuple[str, list[dict]]]:
    """Entropies of generated vs reference sequences, copies and validity of the samples."""
    s = data["summary"]
    rows = [{"quantity": f"sequence entropy, {k} (nats)", "value": ci(v, 2)}
            for k, v in s["entropy"].items()]
    rows += [{"quantity": f"entropy per token, {k} (nats)", "value": ci(v)}
             for k, v in s["token_entropy"].items()]
    rows += [{"quantity": "sequence entropy gap generated - train (nats)",
              "value": ci(s["sequence_entropy_gap"], 2)},
             {"quantity": "KS distance generated vs train entropy",
              "value": s["ks_generated_vs_train"]},
             {"quantity": "AUROC generated vs train entropy",
              "value": s["auroc_generated_vs_train"]},
             {"quantity": "exact copies", "value": ci(s["exact_copy"])},
             {"quantity": "exact or near copies", "value": ci(s["near_or_exact_copy"])},
             {"quantity": "equal to a held-out sequence", "value": s["matches_test_sequence"]},
             {"quantity": "grammatical (generated)", "value": s["grammatical"]},
             {"quantity": "grammatical (held-out, ceiling)", "value": s["test_grammatical"]}]
    rows += [{"quantity": f"fraction {k}", "value": v} for k, v in s["categories"].items()]
    return [("generated samples against the training set", rows)]
