"""Recovery examples as HTML (paper Figs. 1A and 3A): original, corrupted and recovered tokens.

In the corrupted row the positions the corruption changed are marked ``tok-bad``; in the
recovered row a changed position is ``tok-ok`` when it returned to the original token and
``tok-bad`` otherwise, and an uncorrupted position that the reverse process altered is
``tok-bad`` too. Only real (non-pad) positions are shown.
"""

from __future__ import annotations

import html

from attractor.report.html import heading, paragraph, raw


def token_text(tokenizer, ids: list[int]) -> list[str]:
    """Readable token strings (GPT-2's byte-level space marker shown as a space)."""
    return [(tokenizer.id_to_token(int(i)) or f"<{int(i)}>").replace("Ġ", " ") for i in ids]


def to_records(examples: list[dict], tokenizer) -> list[dict]:
    """Example ids -> token strings and per-position marks, JSON-ready."""
    records = []
    for ex in examples:
        n = ex["n_real"]
        real = [i for i, m in enumerate(ex["mask"]) if m]
        x0, zt, xh = ([ex[key][i] for i in real] for key in ("x0", "zt", "x_hat"))
        changed = [a != b for a, b in zip(x0, zt)]
        records.append({
            "split": ex["split"], "id": ex["id"], "level": ex["level"], "n_real": n,
            "original": token_text(tokenizer, x0), "corrupted": token_text(tokenizer, zt),
            "recovered": token_text(tokenizer, xh), "changed": changed,
            "correct": [a == b for a, b in zip(x0, xh)],
        })
    return records


def _row(tokens: list[str], classes: list[str]) -> str:
    cells = (f'<span class="{c}">{html.escape(t)}</span>' for t, c in zip(tokens, classes))
    return '<span style="font-family: monospace">' + " ".join(cells) + "</span>"


def example_blocks(records: list[dict], level_name: str) -> list[str]:
    """HTML blocks: one table per level with original / corrupted / recovered rows."""
    blocks = [paragraph("Green: corrupted token recovered. Red: corrupted and not recovered, "
                        "or an uncorrupted token that the reverse process changed.", "note")]
    for level in sorted({r["level"] for r in records}):
        blocks.append(heading(f"{level_name} = {float(level):g}", 3))
        rows = []
        for r in (r for r in records if r["level"] == level):
            bad = ["tok-bad" if c else "tok-same" for c in r["changed"]]
            rec = ["tok-ok" if ok and c else "tok-same" if ok else "tok-bad"
                   for c, ok in zip(r["changed"], r["correct"])]
            hits = sum(c and ok for c, ok in zip(r["changed"], r["correct"]))
            # every field is escaped: the file may have been edited since it was written
            rows.append(f"<tr><td>{html.escape(str(r['split']))} #{html.escape(str(r['id']))}"
                        f"</td><td class=\"text\">"
                        f"{_row(r['original'], ['tok-same'] * r['n_real'])}<br/>"
                        f"{_row(r['corrupted'], bad)}<br/>{_row(r['recovered'], rec)}</td>"
                        f"<td>{int(hits)}/{int(sum(r['changed']))}</td></tr>")
        blocks.append(raw("<table><thead><tr><th>sequence</th><th>original / corrupted / "
                          "recovered</th><th>recovered</th></tr></thead><tbody>"
                          + "".join(rows) + "</tbody></table>"))
    return blocks
