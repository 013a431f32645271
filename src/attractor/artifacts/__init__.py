"""Every file attractor reads back, each through one schema-checked loader.

A loader returns what its writer wrote, checked field by field, or raises a one-line
:class:`Damaged` (a :class:`~attractor.errors.UserError`) that names the file and the field:

    runs/a/membership.json is damaged: train_ids[3] is -1, outside 0..299

    run_config(run_dir)           RUN/config.json -> (TrainConfig, the file's dict)
    membership(run_dir, n)        RUN/membership.json -> Membership (ids in range, disjoint)
    metrics(path)                 RUN/metrics.jsonl -> rows (a torn last line is dropped)
    summary(run_dir)              RUN/summary.json -> dict, or None when absent
    checkpoint_meta(path)         checkpoint/meta.json -> the step
    checkpoint_state(path, step)  checkpoint/state.pt -> {"step", "optimizer"}
    checkpoint_weights(path, w)   checkpoint/{model,ema}.safetensors -> tensors
    probe_result(dir, name)       probes/<name>.json -> dict
    probe_rows(dir, name)         probes/<name>.jsonl -> rows
    probe_examples(dir, name)     probes/<name>_examples.json -> records
    probe_index(dir)              probes/results.json -> dict
    sweep_file(dir)               SWEEP/sweep.json -> SweepConfig, or None when absent
    analysis_file(dir)            SWEEP/analysis/analysis.json -> dict
    cache_entry(entry, cfg)       cache/<key>/ -> (meta, tensors), or None (rebuild it)

The checks are those the readers rely on (types, ranges, shapes, agreement between fields),
so that a file damaged after it was written is refused here and never reaches an index or a
tensor operation. What a checkpoint must fit (the model's and optimiser's own shapes) is
checked by :mod:`attractor.train.checkpoint`, which knows the model.

The loaders live by what they read (``runs``, ``probes``, ``sweeps``), built from the field checks
of ``fields``; every one is imported here, so callers write ``artifacts.<loader>``.
"""

from attractor.artifacts.fields import Damaged, need
from attractor.artifacts.probes import (
    probe_examples,
    probe_index,
    probe_result,
    probe_rows,
    probe_shard,
    shard_plan,
)
from attractor.artifacts.runs import (
    Membership,
    checkpoint_meta,
    checkpoint_state,
    checkpoint_weights,
    membership,
    metrics,
    run_config,
    summary,
)
from attractor.artifacts.sweeps import analysis_file, cache_entry, results_kind, sweep_file

__all__ = ["Damaged", "Membership", "analysis_file", "cache_entry", "checkpoint_meta",
           "checkpoint_state", "checkpoint_weights", "membership", "metrics", "need",
           "probe_examples", "probe_index", "probe_result", "probe_rows", "probe_shard",
           "results_kind", "run_config", "shard_plan", "summary", "sweep_file"]
