"""The Duo/UDLM/MDLM DiT backbone: its parameter names and what its configs say.

The three codebases share one backbone class (``models/dit.py``: ``DIT``; ``DITBackbone`` in the
Hugging Face releases). Its parameters, in registration order (the order of the EMA shadow list),
and their names in attractor's :class:`~attractor.model.dit.DiT`:

    vocab_embed.embedding                      embedding                   (K, d)
    sigma_map.mlp.{0,2}.{weight,bias}          time.mlp.{0,2}.*            (c, F), (c,), (c, c), (c,)
    blocks.i.norm1.weight                      blocks.i.norm1.weight       (d,)
    blocks.i.attn_qkv.weight                   blocks.i.qkv.weight         (3d, d)
    blocks.i.attn_out.weight                   blocks.i.attn_out.weight    (d, d)
    blocks.i.norm2.weight                      blocks.i.norm2.weight       (d,)
    blocks.i.mlp.{0,2}.{weight,bias}           blocks.i.mlp.{0,2}.*        (m, d), (m,), (d, m), (d,)
    blocks.i.adaLN_modulation.{weight,bias}    blocks.i.adaln.*            (6d, c), (6d,)
    output_layer.norm_final.weight             norm_final.weight           (d,)
    output_layer.linear.{weight,bias}          output.*                    (K, d), (K,)
    output_layer.adaLN_modulation.{w,b}        adaln_final.*               (2d, c), (2d,)

plus one buffer, ``rotary_emb.inv_freq`` (hd/2,), which attractor recomputes and only checks.
"""

from __future__ import annotations

import re
from typing import Any

ROTARY_BUFFER = "rotary_emb.inv_freq"

_HEAD = [("vocab_embed.embedding", "embedding")] + [
    (f"sigma_map.mlp.{i}.{p}", f"time.mlp.{i}.{p}") for i in (0, 2) for p in ("weight", "bias")]
_BLOCK = [("norm1.weight", "norm1.weight"), ("attn_qkv.weight", "qkv.weight"),
          ("attn_out.weight", "attn_out.weight"), ("norm2.weight", "norm2.weight")] + [
    (f"mlp.{i}.{p}", f"mlp.{i}.{p}") for i in (0, 2) for p in ("weight", "bias")] + [
    ("adaLN_modulation.weight", "adaln.weight"), ("adaLN_modulation.bias", "adaln.bias")]
_TAIL = [("output_layer.norm_final.weight", "norm_final.weight"),
         ("output_layer.linear.weight", "output.weight"), ("output_layer.linear.bias", "output.bias"),
         ("output_layer.adaLN_modulation.weight", "adaln_final.weight"),
         ("output_layer.adaLN_modulation.bias", "adaln_final.bias")]

# What each release's model_type says about the diffusion, and its config class's default for
# time_conditioning when config.json leaves it out (Duo's HF backbone always conditions).
_FAMILY = {"mdlm": "masked", "udlm": "uniform", "duo": "uniform"}
_TIME_DEFAULT = {"mdlm": False, "udlm": True, "duo": True}


def parameter_names(blocks: int) -> list[tuple[str, str]]:
    """(original name, attractor name) of every parameter, in the original's parameter order."""
    inner = [(f"blocks.{i}.{a}", f"blocks.{i}.{b}") for i in range(blocks) for a, b in _BLOCK]
    return _HEAD + inner + _TAIL


def count_blocks(names) -> int:
    """1 + the largest block index among ``blocks.<i>.`` names (0 when there is none)."""
    found = [int(m.group(1)) for n in names if (m := re.match(r"blocks\.(\d+)\.", n))]
    return max(found) + 1 if found else 0


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _dropout(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
    return float(value) if ok else None


def hf_facts(config: dict) -> dict[str, Any] | None:
    """What a release's config.json says; None when it lacks the backbone's shape fields.

    Field names are those of ``UDLMConfig``/``MDLMConfig``/``DUOConfig``: hidden_dim, cond_dim,
    n_blocks, n_heads, vocab_size, model_length, dropout, time_conditioning (and causal, cfg).
    """
    shape = {key: _int(config.get(name)) for key, name in (
        ("hidden", "hidden_dim"), ("cond_dim", "cond_dim"), ("blocks", "n_blocks"),
        ("heads", "n_heads"), ("vocab_size", "vocab_size"))}
    if any(v is None for v in shape.values()):
        return None
    model_type = str(config.get("model_type") or "").lower() or None
    time_conditioning = _bool(config.get("time_conditioning"))
    if time_conditioning is None:
        time_conditioning = _TIME_DEFAULT.get(model_type)
    masks = [_int(config.get(k)) for k in ("mask_token_id", "mask_index", "mask_id")]
    return {**shape, "model_type": model_type, "family": _FAMILY.get(model_type),
            "length": _int(config.get("model_length")), "dropout": _dropout(config.get("dropout")),
            "time_conditioning": time_conditioning,
            "mask_id": next((m for m in masks if m is not None), None),
            "unsupported": _unsupported(bool(config.get("causal")), bool(config.get("cfg")))}


def _unsupported(causal: bool, class_conditional: bool) -> str | None:
    if causal:
        return "an autoregressive (causal) model"
    return "a class-conditional (cfg) model" if class_conditional else None


def hparams_facts(hparams: Any) -> dict[str, Any]:
    """What a Lightning checkpoint's pickled training config says (read as plain data).

    Duo keeps the diffusion settings under ``algo`` (name, parameterization, time_conditioning,
    causal_attention); MDLM and UDLM at the top (parameterization, time_conditioning, and UDLM's
    ``diffusion``: uniform or absorbing_state). All three keep shapes under ``model``.
    """
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(config, dict):
        return {}
    algo = config.get("algo") if isinstance(config.get("algo"), dict) else {}
    model = config.get("model") if isinstance(config.get("model"), dict) else {}

    def pick(key: str) -> Any:
        return algo[key] if key in algo else config.get(key)

    parameterization, diffusion = pick("parameterization"), config.get("diffusion")
    family = {"uniform": "uniform", "uniform_data_marginals": "uniform",
              "absorbing_state": "masked"}.get(diffusion) if isinstance(diffusion, str) else None
    if family is None and isinstance(parameterization, str):
        family = {"subs": "masked", "mean": "uniform"}.get(parameterization)
    name = algo.get("name")
    causal = pick("causal_attention") is True or parameterization == "ar"
    return {"heads": _int(model.get("n_heads")), "length": _int(model.get("length")),
            "hidden": _int(model.get("hidden_size")), "blocks": _int(model.get("n_blocks")),
            "cond_dim": _int(model.get("cond_dim")), "dropout": _dropout(model.get("dropout")),
            "time_conditioning": _bool(pick("time_conditioning")), "family": family,
            "model_type": name if isinstance(name, str) else None,
            "unsupported": _unsupported(causal, False)}
