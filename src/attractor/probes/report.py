"""``RUN_DIR/probes/report.html``: every probe present in the directory, from its files alone."""

from __future__ import annotations

from pathlib import Path

from attractor import artifacts
from attractor.errors import UserError
from attractor.probes.examples import example_blocks
from attractor.probes.registry import PROBES
from attractor.report.html import figure, heading, paragraph, preformatted, table, write_page


def _timing_line(data: dict) -> str:
    t = data.get("timing", {})
    frac = t.get("forward_fraction")
    return (f"{t.get('sequences')} sequences in {t.get('wall_s', 0):.1f} s "
            f"({t.get('sequences_per_s') or 0:.1f} per second) on {data.get('device')} in "
            f"{data.get('precision')}; {100 * frac if frac is not None else float('nan'):.0f}% "
            f"of the wall time in {t.get('forward_calls')} denoiser forward passes.")


def _probe_blocks(directory: Path, name: str, steps: int | None) -> list[str]:
    probe, data = PROBES[name], artifacts.probe_result(directory, name)
    blocks = [heading(probe.title)]
    step = data.get("checkpoint_step")
    if steps is not None and step is not None and step < steps:
        blocks.append(paragraph(f"Measured at step {step} of {steps}, before training finished; "
                                "rerun the probe with --overwrite.", "note"))
    for caption, rows in probe.tables(data):
        blocks += [paragraph(caption, "note"), table(rows)]
    blocks.append(paragraph(_timing_line(data), "note"))
    blocks += [figure(png, caption) for caption, png in probe.figures(data)]
    examples = directory / f"{name}_examples.json"
    if examples.is_file():
        records = artifacts.probe_examples(directory, name)
        levels = sorted({r["level"] for r in records})
        keep = [r for r in records if r["level"] == levels[len(levels) // 2]] if levels else []
        blocks += example_blocks(keep, data["level_name"])
    blocks.append(preformatted(f"settings: {data['config']}"))
    return blocks


def _trained_steps(run_dir: Path) -> int | None:
    """The steps the run was configured for, if ``run_dir`` is a readable run."""
    try:
        return artifacts.run_config(run_dir)[0].steps
    except UserError:
        return None


FAMILY_NOTES = {
    "masked": ("A masked (absorbing-state) model: corrupting means masking, and recovery is "
               "infilling (the share of masked tokens its unmasking restores), not a basin that "
               "pulls wrong tokens back, since a masked model never sees a wrong token. "
               "Deterministic retrieval unmasks the most confident positions first; the "
               "conditional entropy of a sequence is its leave-one-out (pseudo-likelihood) "
               "entropy, because a masked model's prediction of a clean sequence copies it."),
    "uniform": ("A uniform-state model: corruption replaces tokens by random ids and retrieval "
                "can move any token, so recovery measures basins of attraction (paper §4)."),
}


WITHOUT_MEMBERSHIP = (
    "Only one kind of sequence was given (members or non-members, not both). What this page "
    "can show: the conditional entropy of the given sequences and of the model's generations, "
    "and how well the given sequences are recovered. What it cannot: whether the model "
    "memorised them. Membership scores, train-vs-test comparisons and copies of training data "
    "need both kinds, and are left empty.")


def render_report(out_dir: str | Path) -> Path:
    """Build ``out_dir/report.html`` from the probe files in ``out_dir``."""
    directory = Path(out_dir)
    meta = artifacts.probe_index(directory)
    blocks = [paragraph(f"Run: {meta.get('run')}")]
    steps = _trained_steps(directory.parent)
    present = [name for name in PROBES if (directory / f"{name}.json").is_file()]
    if present:
        first = artifacts.probe_result(directory, present[0])
        family = first.get("family", "uniform")
        blocks.append(paragraph(FAMILY_NOTES.get(family, ""), "note"))
        if first.get("source"):
            blocks.append(preformatted(f"model: {first['source']}"))
        if not first.get("num_train") or not first.get("num_test", 1):
            blocks.append(paragraph(WITHOUT_MEMBERSHIP, "note"))
    for name in present:
        blocks += _probe_blocks(directory, name, steps)
    return write_page(directory / "report.html", "Basins of attraction and conditional entropy",
                      blocks)
