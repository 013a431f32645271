"""Load released Duo / UDLM / MDLM checkpoints into attractor's own DiT.

    model, info = load_dit_checkpoint("mdlm-owt/")              # a Hugging Face release folder
    model, info = load_dit_checkpoint("duo.ckpt", weights="ema")   # a Lightning checkpoint
    logits = model(zt, sigma)        # zt (B, L) int64, sigma (B,) = -log alpha_t -> (B, L, K)

Supported layouts (docs/checkpoints.md has the table of names):

- ``lightning``: a ``.ckpt`` of s-sahoo/duo, kuleshov-group/mdlm or
  kuleshov-group/discrete-diffusion-guidance (UDLM): ``state_dict`` with ``backbone.*`` keys and,
  where training kept one, ``ema`` whose ``shadow_params`` list the backbone's parameters in
  registration order. ``weights`` picks "ema" (the default when present, and what those
  codebases evaluate with) or "model".
- ``hf``: a release folder (kuleshov-group/mdlm-owt, kuleshov-group/udlm-lm1b, s-sahoo/duo...):
  config.json and model.safetensors or pytorch_model.bin with ``backbone.*`` keys. It holds one
  set of weights (the UDLM release script copies the EMA into it).
- ``state_dict``: a bare mapping of ``backbone.*`` tensors (.safetensors, or torch.save'd).

Nothing is downloaded, no code from a release runs (no ``trust_remote_code``, no flash-attn),
and torch files are read with ``torch.load(weights_only=True)`` only (checkpoint_files.py).

Conventions, checked against those sources. The same as attractor's DiT: rotary embeddings
rotate the whole head, NeoX rotate-half (flash-attn's non-interleaved layout: dims j and
j + hd/2 pair up) with base 10^4 and cos/sin of positions 0..L-1; the time embedding is
[cos, sin] of sigma * 10^4^(-k/128) over 256 features, through Linear-SiLU-Linear, then SiLU;
LayerNorms have a weight and no bias (eps 1e-5, float32); adaLN chunks are (shift, scale, gate)
for attention then MLP, applied as x (1 + scale) + shift with gated residuals; the final layer
is LayerNorm, (shift, scale), Linear; attention is bidirectional with no mask, scale hd^-1/2.
Duo and UDLM condition on sigma = -log alpha_t, as attractor does. What differs:

- MDLM (and any run with ``time_conditioning=False``) feeds sigma = 0 whatever t is: recorded in
  ``ModelConfig.time_conditioning`` (off), which makes the DiT zero sigma itself.
- The originals run the blocks under CUDA bf16 autocast; attractor computes in the caller's
  dtype, so fp32 logits agree with theirs to bf16 rounding, not bit for bit.
- MDLM's SUBS step (mask logit to -inf, unmasked tokens copied) and the samplers' own
  post-processing happen outside the backbone and are not part of the loaded model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attractor.adapters.checkpoint_files import (
    plain,
    read_json,
    safetensors_load,
    torch_load,
)
from attractor.adapters.dit_layout import (
    ROTARY_BUFFER,
    count_blocks,
    hf_facts,
    hparams_facts,
    parameter_names,
)
from attractor.errors import UserError, require
from attractor.model.configs import ModelConfig
from attractor.model.dit import DiT

PREFIX = "backbone."
WEIGHTS = ("ema", "model")


@dataclass(frozen=True)
class CheckpointInfo:
    """What was loaded. ``family``: "uniform" (Duo/UDLM) or "masked" (MDLM), None if unsaid."""

    path: str
    layout: str                   # "lightning", "hf" or "state_dict"
    weights: str                  # "ema", "model" or "release" (the one set a file holds)
    family: str | None
    model_type: str | None        # config.json's model_type (lower case), or Duo's algo.name
    time_conditioning: bool
    vocab_size: int
    length: int | None            # training length (model_length / model.length), if said
    mask_id: int | None           # only when the config names one
    config: ModelConfig


@dataclass
class _Source:
    layout: str
    tensors: dict[str, Any]       # original backbone names (no prefix) -> tensors
    facts: dict[str, Any]
    weights: str


def load_dit_checkpoint(path: str | Path, *, weights: str | None = None, heads: int | None = None,
                        time_conditioning: bool | None = None,
                        device: str | torch.device = "cpu") -> tuple[DiT, CheckpointInfo]:
    """A Duo/UDLM/MDLM checkpoint as an attractor DiT in eval mode, with a record of it.

    ``heads`` and ``time_conditioning`` override the checkpoint's config; they are needed only
    where a file does not say (a bare state dict without the rotary buffer, say).
    """
    path = Path(path)
    require(path.exists(), f"{path}: no such file or directory")
    require(weights in (None, *WEIGHTS), f"weights must be 'ema' or 'model', not {weights!r}")
    source = _read(path, weights)
    _check_names(path, source.tensors)
    cfg = _model_config(path, source, heads, time_conditioning)
    vocab_size = source.tensors["vocab_embed.embedding"].shape[0]
    model = DiT(cfg, vocab_size)
    model.load_state_dict(_attractor_state(path, source.tensors, model), strict=True)
    facts = source.facts
    info = CheckpointInfo(str(path), source.layout, source.weights, facts.get("family"),
                          facts.get("model_type"), cfg.time_conditioning, vocab_size,
                          facts.get("length"), facts.get("mask_id"), cfg)
    return model.to(device).eval(), info


# --------------------------------------------------------------------------- reading the layouts

def _read(path: Path, weights: str | None) -> _Source:
    if path.is_dir():
        return _read_hf(path, weights)
    if path.suffix == ".safetensors":
        return _bare(path, safetensors_load(path), weights)
    obj = torch_load(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return _read_lightning(path, obj, weights)
    if isinstance(obj, Mapping) and any(isinstance(k, str) and k.startswith(PREFIX) for k in obj):
        return _bare(path, obj, weights)
    raise UserError(f"{path}: unknown layout: neither a Lightning checkpoint (no 'state_dict') "
                    f"nor a state dict of {PREFIX}* tensors")


def _backbone(path: Path, state: Mapping, strict: bool) -> dict[str, Any]:
    """``backbone.*`` entries without the prefix; ``strict``: nothing else may be there."""
    keys = [k for k in state if isinstance(k, str) and k.startswith(PREFIX)]
    others = [str(k) for k in state if not (isinstance(k, str) and k.startswith(PREFIX))]
    require(bool(keys), f"{path}: unknown layout: no {PREFIX}* weights")
    require(not (strict and others), f"{path}: unexpected keys outside {PREFIX}*: "
            f"{_few(others)}")
    return {k[len(PREFIX):]: state[k] for k in keys}


def _bare(path: Path, state: Mapping, weights: str | None) -> _Source:
    require(weights is None, f"{path}: a bare state dict holds one set of weights; "
            "leave weights unset")
    return _Source("state_dict", _backbone(path, state, strict=True), {}, "release")


def _read_hf(path: Path, weights: str | None) -> _Source:
    config_path = path / "config.json"
    require(config_path.is_file(), f"{path}: unknown layout: a folder without config.json "
            "(expected a Hugging Face release of Duo, UDLM or MDLM)")
    facts = hf_facts(read_json(config_path))
    require(facts is not None, f"{config_path}: unknown layout: no hidden_dim, cond_dim, "
            "n_blocks, n_heads and vocab_size (not a Duo/UDLM/MDLM config)")
    require(facts["unsupported"] is None, f"{path}: is {facts['unsupported']}; only the "
            "bidirectional diffusion DiT is supported")
    require(weights is None, f"{path}: a release folder holds one set of weights; "
            "leave weights unset")
    for name, reader in (("model.safetensors", safetensors_load), ("pytorch_model.bin", torch_load)):
        if (path / name).is_file():
            state = reader(path / name)
            require(isinstance(state, Mapping), f"{path / name}: holds no state dict")
            return _Source("hf", _backbone(path / name, state, strict=True), facts, "release")
    raise UserError(f"{path}: unknown layout: no model.safetensors or pytorch_model.bin")


def _read_lightning(path: Path, obj: Mapping, weights: str | None) -> _Source:
    state = obj["state_dict"]
    require(isinstance(state, Mapping), f"{path}: 'state_dict' is not a mapping")
    tensors = _backbone(path, state, strict=False)   # the rest: noise schedule, metrics buffers
    facts = hparams_facts(plain(obj.get("hyper_parameters")))
    require(facts.get("unsupported") is None, f"{path}: is {facts.get('unsupported')}; only the "
            "bidirectional diffusion DiT is supported")
    ema = obj.get("ema")
    shadow = ema.get("shadow_params") if isinstance(ema, Mapping) else None
    has_ema = isinstance(shadow, (list, tuple)) and len(shadow) > 0
    choice = weights or ("ema" if has_ema else "model")
    if choice == "ema":
        require(has_ema, f"{path}: has no EMA weights; use weights='model'")
        _check_names(path, tensors)          # before pairing the EMA list with the names
        names = [orig for orig, _ in parameter_names(count_blocks(tensors))]
        require(len(shadow) == len(names), f"{path}: the EMA holds {len(shadow)} tensors but "
                f"the backbone has {len(names)} parameters")
        tensors = {**tensors, **dict(zip(names, shadow))}   # the rotary buffer stays
    return _Source("lightning", tensors, facts, choice)


# --------------------------------------------------------------------------- checks and mapping

def _few(names: list[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _check_names(path: Path, tensors: dict[str, Any]) -> None:
    """Every parameter present, nothing else, and every entry a floating-point tensor."""
    require(count_blocks(tensors) > 0, f"{path}: missing keys: blocks.0.* (no transformer blocks)")
    expected = [orig for orig, _ in parameter_names(count_blocks(tensors))]
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected and n != ROTARY_BUFFER]
    require(not missing, f"{path}: missing keys: {_few(missing)}")
    require(not unexpected, f"{path}: unexpected keys: {_few(unexpected)} (not a Duo/UDLM/MDLM "
            "DiT backbone; class-conditional and autoregressive variants are not supported)")
    for name, value in tensors.items():
        require(isinstance(value, torch.Tensor) and value.is_floating_point(),
                f"{path}: {name} is not a floating-point tensor")


def _model_config(path: Path, source: _Source, heads: int | None,
                  time_conditioning: bool | None) -> ModelConfig:
    """The ModelConfig of the checkpoint: shapes from the weights, heads and sigma use from its
    config (or the arguments), cross-checked against each other."""
    t, facts = source.tensors, source.facts
    for name in ("vocab_embed.embedding", "sigma_map.mlp.0.weight", "blocks.0.mlp.0.weight"):
        require(t[name].ndim == 2, f"{path}: mismatched shapes: {name} has {tuple(t[name].shape)}")
    vocab, hidden = t["vocab_embed.embedding"].shape
    cond_dim, time_features = t["sigma_map.mlp.0.weight"].shape
    blocks, mlp = count_blocks(t), t["blocks.0.mlp.0.weight"].shape[0]
    found = {"hidden": hidden, "blocks": blocks, "cond_dim": cond_dim, "vocab_size": vocab}
    for key, value in found.items():
        said = facts.get(key)
        require(said is None or said == value, f"{path}: the config says {key} = {said} but the "
                f"weights have {value}")
    heads = heads if heads is not None else facts.get("heads")
    heads = heads if heads is not None else _heads_from_rotary(path, t, hidden)
    tc = facts.get("time_conditioning") if time_conditioning is None else time_conditioning
    require(tc is not None, f"{path}: does not say whether it was trained with time "
            "conditioning; pass time_conditioning=True (Duo, UDLM) or False (MDLM)")
    require(mlp % hidden == 0, f"{path}: the MLP width {mlp} is not a multiple of {hidden}")
    extra = {} if facts.get("dropout") is None else {"dropout": facts["dropout"]}
    try:
        cfg = ModelConfig(hidden=hidden, blocks=blocks, heads=heads, cond_dim=cond_dim,
                          mlp_ratio=mlp // hidden, time_features=time_features,
                          time_conditioning=bool(tc), **extra)
    except UserError as exc:
        raise UserError(f"{path}: does not fit attractor's DiT: {exc}") from None
    _check_rotary(path, t.get(ROTARY_BUFFER), hidden // heads)
    return cfg


def _heads_from_rotary(path: Path, tensors: dict[str, Any], hidden: int) -> int:
    """The head count from the rotary buffer, whose length is head_dim / 2."""
    inv_freq = tensors.get(ROTARY_BUFFER)
    require(inv_freq is not None, f"{path}: does not say how many attention heads it has; "
            "pass heads=")
    half = inv_freq.numel()
    require(half > 0 and hidden % (2 * half) == 0, f"{path}: {ROTARY_BUFFER} has {half} "
            f"entries, which does not divide the width {hidden} into heads")
    return hidden // (2 * half)


def _check_rotary(path: Path, inv_freq: torch.Tensor | None, head_dim: int) -> None:
    """The checkpoint's rotary frequencies are those attractor computes (base 10^4)."""
    if inv_freq is None:
        return
    expected = 1.0 / 1e4 ** (torch.arange(0, head_dim, 2).double() / head_dim)
    ok = inv_freq.shape == expected.shape and torch.allclose(inv_freq.double(), expected,
                                                             rtol=1e-4)
    require(ok, f"{path}: {ROTARY_BUFFER} is not the base-10^4 rotary of head size {head_dim}")


def _attractor_state(path: Path, tensors: dict[str, Any], model: DiT) -> dict[str, torch.Tensor]:
    """The checkpoint's parameters under attractor's names, shapes checked, in float32."""
    target = model.state_dict()
    state, wrong = {}, []
    for orig, ours in parameter_names(model.cfg.blocks):
        value = tensors[orig]
        if value.shape != target[ours].shape:
            wrong.append(f"{orig} {tuple(value.shape)} (expected {tuple(target[ours].shape)})")
        state[ours] = value.to(target[ours].dtype)
    require(not wrong, f"{path}: mismatched shapes: {_few(wrong, 2)}")
    return state
