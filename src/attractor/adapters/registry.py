"""Every kind of model the probes can open, in one table, and how each is recognised.

    export         a folder written by ``attractor export`` (config.json says so)
    dit            a Duo / UDLM / MDLM checkpoint: a Lightning ``.ckpt``, or a release folder
                   whose config.json names their DiT (loaded into attractor's own DiT)
    transformers   a folder with a ``transformers`` masked LM (AutoModelForMaskedLM, or AutoModel
                   with ``.logits``); custom model code runs only with --trust-remote-code

Everything is read from local files; a name that is not a local path is refused with the
command that downloads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from attractor.adapters.checkpoint_files import read_json
from attractor.adapters.contract import LoadedModel, special_ids
from attractor.adapters.export import is_export, load_export
from attractor.adapters.hf_masked import load_masked_lm
from attractor.errors import UserError, require

DIT_MODEL_TYPES = ("udlm", "mdlm", "duo")


@dataclass(frozen=True)
class Adapter:
    detect: Callable[[Path], bool]
    load: Callable[[Path, object], LoadedModel]
    what: str


def _is_dit(path: Path) -> bool:
    if path.is_file():
        return path.suffix in (".ckpt", ".pt", ".bin", ".safetensors")
    config = path / "config.json"
    return config.is_file() and str(read_json(config).get("model_type", "")).lower() in \
        DIT_MODEL_TYPES


def _is_transformers(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and not _is_dit(path)


def _tokenizer(spec: str | None, path: Path):
    """The tokenizer a user named (``gpt2`` or a tokenizer.json / folder with one), else the
    tokenizer.json beside the model, else None."""
    from attractor.data import load_tokenizer
    from attractor.data.tokenizer import gpt2_tokenizer

    if spec == "gpt2":
        return gpt2_tokenizer()
    if spec is not None:
        return load_tokenizer(Path(spec).expanduser())
    folder = path if path.is_dir() else path.parent
    return load_tokenizer(folder / "tokenizer.json") if (folder / "tokenizer.json").is_file() \
        else None


def _load_dit(path: Path, cfg) -> LoadedModel:
    from attractor.adapters.dit_checkpoint import load_dit_checkpoint
    from attractor.schedule import LogLinear

    model, info = load_dit_checkpoint(path, weights=cfg.weights)
    tokenizer = _tokenizer(cfg.tokenizer, path)
    require(tokenizer is not None, f"{path} holds no tokenizer; give --tokenizer gpt2 (Duo and "
            "MDLM on OpenWebText) or the path of the tokenizer.json it was trained with")
    special = special_ids(tokenizer, pad=cfg.pad_id, bos=cfg.bos_id, eos=cfg.eos_id,
                          mask=cfg.mask_id if cfg.mask_id is not None else info.mask_id)
    return LoadedModel(model, info.family or "uniform", "sigma", LogLinear(), info.vocab_size,
                       tokenizer, special, info.length,
                       {"adapter": "dit", "path": str(path), "layout": info.layout,
                        "weights": info.weights, "model_type": info.model_type})


ADAPTERS: dict[str, Adapter] = {
    "export": Adapter(is_export, lambda path, cfg: load_export(path), "an attractor export"),
    "dit": Adapter(_is_dit, _load_dit, "a Duo/UDLM/MDLM checkpoint"),
    "transformers": Adapter(_is_transformers, load_masked_lm, "a transformers masked LM"),
}


def load_model(cfg) -> LoadedModel:
    """The model at ``cfg.model`` through its adapter (``cfg.layout``, or the first that
    recognises it)."""
    path = Path(cfg.model).expanduser()
    if not path.exists():
        raise UserError(f"{cfg.model} is not a local path; attractor reads models from disk "
                        f"only: download it first (e.g. huggingface-cli download {cfg.model} "
                        f"--local-dir DIR) and give DIR")
    if cfg.layout != "auto":
        return ADAPTERS[cfg.layout].load(path, cfg)
    for adapter in ADAPTERS.values():
        if adapter.detect(path):
            return adapter.load(path, cfg)
    kinds = "; ".join(a.what for a in ADAPTERS.values())
    raise UserError(f"{path} is none of the model layouts attractor opens ({kinds}); "
                    "see docs/checkpoints.md")
