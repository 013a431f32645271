"""A ``transformers`` masked language model in a local folder, as a masked-family denoiser.

BERT-style masked LMs and masked diffusion LMs (LLaDA, Dream and the like) predict every masked
position from the rest, with no time input: x_theta(z) = softmax(model(input_ids=z).logits).
They open with ``AutoModelForMaskedLM`` (or ``AutoModel`` for models whose output has
``.logits``), from local files only (``local_files_only=True``). A folder whose config.json
names its own model code (``auto_map``) runs that code only with ``trust_remote_code``. Models
whose logits at position i predict token i + 1 (Dream, initialised from an autoregressive LM)
take ``shifted_logits``: the logits are moved one position right.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attractor.adapters.checkpoint_files import read_json
from attractor.adapters.contract import LoadedModel, special_ids
from attractor.errors import UserError, require


class MaskedLMDenoiser(torch.nn.Module):
    """(z (B, L) int64) -> logits (B, L, K) float32 of a transformers model."""

    def __init__(self, model: torch.nn.Module, shifted: bool):
        super().__init__()
        self.model, self.shifted = model, shifted

    def forward(self, zt: torch.Tensor) -> torch.Tensor:
        first = self.model.get_input_embeddings().weight.device     # layers may span devices
        logits = self.model(input_ids=zt.to(first)).logits.to(zt.device)
        if self.shifted:                  # logits[i] predicted token i + 1: move them to i + 1
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("transformers models need the transformers library: "
                        "pip install 'attractor[transformers]'") from None
    transformers.logging.set_verbosity_error()         # errors come back as one line instead
    transformers.logging.disable_progress_bar()
    return transformers


def _model(path: Path, trust: bool, device_map: str | None = None) -> torch.nn.Module:
    tf = _transformers()
    kwargs = {"local_files_only": True, "trust_remote_code": trust}
    if device_map is not None:
        try:
            import accelerate  # noqa: F401 - transformers needs it for a device map
        except ImportError:
            raise UserError("--device-map needs the accelerate package: pip install "
                            "accelerate") from None
        kwargs["device_map"] = device_map
    errors = []
    for auto in (tf.AutoModelForMaskedLM, tf.AutoModel):
        try:
            return auto.from_pretrained(str(path), **kwargs)
        except (ValueError, KeyError) as err:        # not a masked LM: try the next auto class
            errors.append(str(err).splitlines()[0][:150])
        except Exception as err:  # noqa: BLE001 - corrupt weights, missing files: one line
            first = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise UserError(f"cannot load {path} with transformers ({type(err).__name__}: "
                            f"{first})") from None
    raise UserError(f"{path} is not a masked LM transformers can open ({'; '.join(errors)})")


def _tokenizer(path: Path, spec: str | None):
    from attractor.data import load_tokenizer

    if spec is not None and spec != "gpt2":
        return load_tokenizer(Path(spec).expanduser())
    if (path / "tokenizer.json").is_file():
        return load_tokenizer(path / "tokenizer.json")
    tf = _transformers()
    try:
        tok = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"{path} has no tokenizer transformers can open ({err}); give "
                        "--tokenizer PATH/tokenizer.json") from None
    require(getattr(tok, "backend_tokenizer", None) is not None,
            f"the tokenizer of {path} is not a fast tokenizer; give --tokenizer tokenizer.json")
    return tok.backend_tokenizer


def load_masked_lm(path: Path, cfg) -> LoadedModel:
    """The masked LM in ``path`` (see the module docstring); ``cfg`` a SubjectConfig."""
    from attractor.schedule import LogLinear

    config = read_json(path / "config.json")
    if "auto_map" in config and not cfg.trust_remote_code:
        raise UserError(f"{path} ships its own model code (auto_map in config.json); attractor "
                        "runs it only with --trust-remote-code")
    model = _model(path, cfg.trust_remote_code, cfg.device_map).eval()
    tokenizer = _tokenizer(path, cfg.tokenizer)
    special = special_ids(tokenizer, pad=cfg.pad_id, bos=cfg.bos_id, eos=cfg.eos_id,
                          mask=cfg.mask_id if cfg.mask_id is not None
                          else config.get("mask_token_id"))
    vocab = int(getattr(model.config, "vocab_size", 0) or config.get("vocab_size", 0))
    require(vocab > 0, f"{path}/config.json states no vocab_size")
    length = config.get("max_position_embeddings") or config.get("max_sequence_length")
    return LoadedModel(MaskedLMDenoiser(model, cfg.shifted_logits), "masked", "none",
                       LogLinear(), vocab, tokenizer, special, length,
                       {"adapter": "transformers", "path": str(path),
                        "architectures": config.get("architectures"),
                        "model_type": config.get("model_type"),
                        "shifted_logits": cfg.shifted_logits, "device_map": cfg.device_map,
                        "placement": sorted({str(p.device) for p in model.parameters()})})
