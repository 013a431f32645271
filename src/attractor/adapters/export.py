"""``attractor export RUN OUT``: a trained run as a self-contained model directory, and back.

OUT/
    config.json         {"format": "attractor-export", "version": 1, "model": ModelConfig,
                         "vocab_size", "family", "schedule", "special": {pad, bos, eos, mask},
                         "max_length", "mode", "trained": {the run's settings and summary}}
    model.safetensors   the EMA weights (what the probes use), DiT parameter names
    tokenizer.json      the run's tokenizer

Nothing else is needed to probe it: ``attractor probe ... --model OUT``. Membership is not part
of an export; give it with ``--members`` / ``--nonmembers``.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from attractor.adapters.checkpoint_files import read_json, safetensors_load
from attractor.adapters.contract import LoadedModel, Special
from attractor.config import from_dict, to_dict
from attractor.errors import UserError, require
from attractor.io import make_dir, write_json
from attractor.model import DiT, ModelConfig
from attractor.schedule import get_schedule

FORMAT, VERSION = "attractor-export", 1


def is_export(path: Path) -> bool:
    """Whether ``path`` is a directory written by :func:`export_run`."""
    try:
        return path.is_dir() and read_json(path / "config.json").get("format") == FORMAT
    except UserError:
        return False


def export_run(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the model of a trained run (its EMA weights) to ``out``; returns config.json."""
    from attractor.run import load_run

    out = Path(out)
    require(not out.exists() or not any(out.iterdir()) or (overwrite and is_export(out)),
            f"{out} exists and is not empty; choose another directory"
            + ("" if not is_export(out) else " or pass --overwrite"))
    run = load_run(run_dir, device="cpu")
    require(run.finite, f"{run_dir} diverged: its weights are not finite; nothing to export")
    make_dir(out)
    state = {k: v.detach().contiguous() for k, v in run.model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    run.tokenizer.save(str(out / "tokenizer.json"))
    ds = run.dataset
    return write_json(out / "config.json", {
        "format": FORMAT, "version": VERSION, "model": to_dict(run.config.model),
        "vocab_size": run.vocab_size, "family": run.family, "schedule": run.config.schedule,
        "special": {"pad": ds.pad_id, "bos": ds.bos_id, "eos": ds.eos_id, "mask": run.mask_id},
        "max_length": ds.block_length, "mode": run.config.data.mode,
        "trained": {"run": str(run.directory), "step": run.step,
                    "train": to_dict(run.config)}})


def load_export(path: Path) -> LoadedModel:
    """A model directory written by :func:`export_run`."""
    from attractor.data import load_tokenizer

    meta = read_json(path / "config.json")
    require(meta.get("version") == VERSION,
            f"{path}/config.json is an export of version {meta.get('version')}, not {VERSION}")
    try:
        cfg = from_dict(ModelConfig, meta["model"])
        vocab, family = int(meta["vocab_size"]), meta["family"]
        special = Special(**meta["special"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}/config.json is damaged ({err})") from None
    model = DiT(cfg, vocab, causal=family == "ar")
    try:
        model.load_state_dict(safetensors_load(path / "model.safetensors"))
    except RuntimeError as err:
        raise UserError(f"{path}/model.safetensors does not fit its config.json "
                        f"({str(err).splitlines()[0]})") from None
    model.eval()
    return LoadedModel(model, family, "sigma", get_schedule(meta.get("schedule", "loglinear")),
                       vocab, load_tokenizer(path / "tokenizer.json"), special,
                       meta.get("max_length"), {"adapter": "export", "path": str(path)})

