"""Summary tables of the probes, from their saved JSON alone: rows of strings with 95% intervals."""

from __future__ import annotations


def ci(stat: dict | None, digits: int = 3) -> str:
    """``mean [lo, hi]`` of a summary dict, "–" when undefined."""
    if not stat or stat.get("mean") is None:
        return "–"
    lo, hi = stat.get("lo"), stat.get("hi")
    band = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and hi is not None else ""
    return f"{stat['mean']:.{digits}f}{band}"


def recovery(data: dict) -> list[dict]:
    """One row per corruption level: recovery, preservation and entropies of both splits."""
    key, rows = data["level_name"], []
    for e in data["summary"]:
        row = {key: e[key]}
        for split in ("train", "test"):
            row[f"{split} recovery"] = ci(e[split]["recovery"])
        for split in ("train", "test"):
            row[f"{split} preserved"] = ci(e[split]["preserved"])
        row["AUROC train vs test"] = e["auroc_train_vs_test"]
        for split in ("train", "test"):
            row[f"{split} H recovered"] = ci(e[split]["entropy_recovered"])
            row[f"{split} H unrecovered"] = ci(e[split]["entropy_unrecovered"])
        rows.append(row)
    return rows


def entropy(data: dict) -> list[dict]:
    """One row per time t: sequence and per-token entropies, and the membership AUROC."""
    return [{"t": e["t"], "train H (nats)": ci(e["train"], 2), "test H (nats)": ci(e["test"], 2),
             "train H per token": ci(e["train_token"]), "test H per token": ci(e["test_token"]),
             "membership AUROC (low H)": ci(e["membership_auroc"])} for e in data["summary"]]


def generate(data: dict) -> list[dict]:
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
    return rows
