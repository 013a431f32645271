"""``report.html`` of a dense experiment, built only from the files in its directory."""

from __future__ import annotations

from pathlib import Path

from attractor.io import read_json
from attractor.report.html import figure, heading, paragraph, preformatted, table, write_page

TITLES = {"dense-circle": "Diffusion as Dense Associative Memory: points on a circle",
          "dense-digits": "Diffusion as Dense Associative Memory: 8x8 digits"}

_EXACT_COLUMNS = ("K", "minima", "memorised_minima", "off_data_minima",
                  "start_fraction_memorised", "lowest_eig_memorised", "lowest_eig_off_data",
                  "lowest_eig_min", "mean_radius", "spacing", "delta_m")
_MERGE_COLUMNS = ("K", "sets", "only_training_sets", "resolvable_sets",
                  "only_training_sets_resolvable", "one_minimum_per_point_sets", "gap_sigma_min",
                  "close_pairs", "off_data_minima", "merged_pair_minima", "split_pair_minima",
                  "unexplained_off_data_minima", "lowest_eig_memorised_min",
                  "lowest_eig_memorised_min_resolvable")
_LEARNED_COLUMNS = ("K", "memorised", "spurious", "generalised", "chance_spurious",
                    "spurious_centres", "basin_train_median", "basin_spurious_median",
                    "spacing", "delta_m", "delta_s", "final_loss")


def _seed_means(rows: list[dict]) -> list[dict]:
    """Per-K mean of every numeric column over seeds (NaN entries skipped), plus the seed count."""
    out = []
    for k in sorted({r["K"] for r in rows}):
        group = [r for r in rows if r["K"] == k]
        mean = {"K": k, "seeds": len(group)}
        for col in _EXACT_COLUMNS[1:]:
            vals = [r[col] for r in group if isinstance(r.get(col), (int, float))]
            mean[col] = sum(vals) / len(vals) if vals else None
        mean["all_minima_at_training_points"] = sum(r["off_data_minima"] == 0 for r in group)
        out.append(mean)
    return out


def _figure(out: Path, name: str, caption: str) -> list[str]:
    return [figure(out / name, caption)] if (out / name).is_file() else []


def _threshold_text(results: dict) -> str:
    th = results["thresholds"]
    return (f"Thresholds, in units of s = median nearest-neighbour distance of the training set "
            f"(absolute values per K in the tables): memorised if d(x, train) <= "
            f"{th['memorised']:.3g} s; spurious if not memorised and at least "
            f"{th['min_shared']} other samples lie within {th['spurious']:.3g} s; "
            f"generalised otherwise. 'chance_spurious' applies the same rule to fresh draws from "
            f"the data distribution.")


def _merge_blocks(results: dict) -> list[str]:
    """Per-K account of the exact minima: which off-data minima two merging wells explain."""
    by_k = results.get("exact_by_k")
    if not by_k:  # results written before the account existed
        return []
    gap = results.get("merge_gap_sigma", 2.0)
    return [paragraph(
        f"Why a minimum is off the data. Two equal wells at distance d have one minimum, at their "
        f"midpoint, iff d < {gap:g} sigma (the Hessian there is I - (d / 2 sigma)^2 u u^T); above "
        f"that they split into two minima that approach the points as d grows. Per set: gap = "
        f"smallest distance between training points (chord), in sigma; a set is resolvable if "
        f"every gap exceeds {gap:g} sigma. An off-data minimum is a merged pair if its two "
        f"nearest training points are closer than {gap:g} sigma, a split pair if they are "
        f"farther but the two-well minima themselves lie beyond delta_m of the points, and "
        f"unexplained otherwise. Counts are summed over the sets of each K; "
        f"one_minimum_per_point_sets also requires exactly K minima; eigenvalues are the "
        f"smallest at any training-point minimum (all sets, resolvable sets). The account "
        f"explains something only while close pairs are rare: once the typical spacing falls "
        f"below {gap:g} sigma nearly every off-data minimum counts as a merged pair, which then "
        f"says only that it lies among overlapping wells."),
        table(by_k, _MERGE_COLUMNS, digits=3)]


def _entropy_blocks(out: Path, results: dict) -> list[str]:
    blocks = [heading("Conditional entropy vs curvature (Appendix C)")]
    blocks.append(paragraph(
        "Exact differential entropy of the Gaussian-mixture posterior p(x0 | x_t) (Monte Carlo) "
        "against the Laplace form d/2 log 2 pi e - 1/2 log det Hess at the posterior mode. "
        "pearson_r correlates the exact entropy with -1/2 log det Hess; errors are Laplace "
        "minus exact, in nats."))
    overall = [{k: v for k, v in e.items() if k != "per_sigma"} for e in results["entropy"]]
    blocks.append(table(overall))
    blocks.append(table([row for e in results["entropy"] for row in e["per_sigma"]]))
    return blocks + _figure(out, "entropy.png", "Each point is one x_t; colour = noise level.")



def render_report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` from results.json and the figures next to it."""
    out = Path(out_dir)
    results = read_json(out / "results.json")
    cfg = results["config"]
    blocks = [paragraph(f"Wall time {results['wall_seconds']:.0f} s on "
                        f"{results['threads']} torch threads."),
              heading("Exact energy: minima and curvature"),
              paragraph(f"E(x) = -(1/beta) log sum_mu exp(-beta ||x - xi_mu||^2 / 2), "
                        f"sigma = {cfg['sigma']}; minima from {cfg['starts']} starts by "
                        f"x <- D(x); a minimum is 'at a training point' if within delta_m."),
              table(_seed_means(results["exact"]), digits=3), *_merge_blocks(results)]
    blocks += _figure(out, "landscape.png", "Energy (dark = low), training points (white), "
                      "minima at training points (blue x) and off the data (orange x).")
    blocks += _figure(out, "minima.png", "Minima per K and their smallest Hessian eigenvalue.")
    blocks += _figure(out, "spectra.png", "Hessian eigenvalues at every minimum (seed 0).")
    blocks += [heading("Learned score: memorised, spurious, generalised"),
               paragraph(_threshold_text(results)),
               table(results["learned"], _LEARNED_COLUMNS, digits=3)]
    blocks += _figure(out, "fractions.png", "Fractions of generated samples per class.")
    blocks += _figure(out, "samples.png", "Generated samples coloured by class; + = training.")
    blocks += _figure(out, "digits_samples.png", "Samples; frame colour = class "
                      "(blue memorised, orange spurious, green generalised).")
    blocks += _figure(out, "basins.png", "Basin size as critical noise level (median).")
    blocks += _entropy_blocks(out, results)
    blocks += [heading("Configuration"), preformatted(_json(cfg))]
    return write_page(out / "report.html", TITLES.get(results["kind"], results["kind"]), blocks)


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=2)
