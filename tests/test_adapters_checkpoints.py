"""Released Duo / UDLM / MDLM checkpoint layouts load into attractor's DiT with identical logits.

The reference below is the original backbone's forward pass written from its definition
(s-sahoo/duo models/dit.py, the same in kuleshov-group/mdlm and discrete-diffusion-guidance),
with the original parameter names, as plain tensor operations; it shares no code with attractor.
"""

import json
import math
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from attractor.adapters import load_dit_checkpoint
from attractor.errors import UserError
from attractor.model import DiT, ModelConfig

K, D, C, FREQ, BLOCKS, HEADS, LENGTH = 50, 32, 16, 256, 2, 4, 12


# --------------------------------------------------------------------------- the original model

def original_shapes(blocks=BLOCKS, d=D, c=C, vocab=K):
    """Parameter names and shapes of the original DIT, in registration order."""
    shapes = {"vocab_embed.embedding": (vocab, d), "sigma_map.mlp.0.weight": (c, FREQ),
              "sigma_map.mlp.0.bias": (c,), "sigma_map.mlp.2.weight": (c, c),
              "sigma_map.mlp.2.bias": (c,)}
    for i in range(blocks):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (d,), b + "attn_qkv.weight": (3 * d, d),
                       b + "attn_out.weight": (d, d), b + "norm2.weight": (d,),
                       b + "mlp.0.weight": (4 * d, d), b + "mlp.0.bias": (4 * d,),
                       b + "mlp.2.weight": (d, 4 * d), b + "mlp.2.bias": (d,),
                       b + "adaLN_modulation.weight": (6 * d, c),
                       b + "adaLN_modulation.bias": (6 * d,)})
    shapes.update({"output_layer.norm_final.weight": (d,), "output_layer.linear.weight": (vocab, d),
                   "output_layer.linear.bias": (vocab,),
                   "output_layer.adaLN_modulation.weight": (2 * d, c),
                   "output_layer.adaLN_modulation.bias": (2 * d,)})
    return shapes


def random_weights(gen):
    """Non-zero random values everywhere (training zero-initialises adaLN and the output)."""
    out = {}
    for name, shape in original_shapes().items():
        value = torch.randn(shape, generator=gen) * (0.3 if len(shape) == 1 else 0.15)
        out[name] = value + 1.0 if "norm" in name else value
    return out


def inv_freq(head_dim=D // HEADS):
    return 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim)


def _layer_norm(x, weight):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * weight


def _rotate(x, cos, sin):
    """flash-attn's non-interleaved rotary: dim j pairs with dim j + hd/2. x (B, L, H, hd)."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def _time(w, sigma):
    """TimestepEmbedder then SiLU: (B,) -> (B, C)."""
    half = FREQ // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = sigma.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    h = F.silu(emb @ w["sigma_map.mlp.0.weight"].T + w["sigma_map.mlp.0.bias"])
    return F.silu(h @ w["sigma_map.mlp.2.weight"].T + w["sigma_map.mlp.2.bias"])


def _block(w, i, x, c, cos, sin, heads):
    b = f"blocks.{i}."
    B, L, d = x.shape
    mods = (c @ w[b + "adaLN_modulation.weight"].T + w[b + "adaLN_modulation.bias"])[:, None]
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods.chunk(6, dim=-1)
    h = _layer_norm(x, w[b + "norm1.weight"]) * (1 + scale_msa) + shift_msa
    qkv = (h @ w[b + "attn_qkv.weight"].T).view(B, L, 3, heads, d // heads)   # (three h d)
    q, k, v = _rotate(qkv[:, :, 0], cos, sin), _rotate(qkv[:, :, 1], cos, sin), qkv[:, :, 2]
    scores = torch.einsum("bqhe,bkhe->bhqk", q, k) / math.sqrt(d // heads)
    a = torch.einsum("bhqk,bkhe->bqhe", scores.softmax(-1), v).reshape(B, L, d)
    x = x + gate_msa * (a @ w[b + "attn_out.weight"].T)
    h = _layer_norm(x, w[b + "norm2.weight"]) * (1 + scale_mlp) + shift_mlp
    h = F.gelu(h @ w[b + "mlp.0.weight"].T + w[b + "mlp.0.bias"], approximate="tanh")
    return x + gate_mlp * (h @ w[b + "mlp.2.weight"].T + w[b + "mlp.2.bias"])


def reference_logits(w, tokens, sigma, time_conditioning=True, heads=HEADS):
    """The original DIT.forward in fp32: tokens (B, L), sigma (B,) -> logits (B, L, K)."""
    if not time_conditioning:                       # MDLM's _process_sigma
        sigma = torch.zeros_like(sigma)
    x = w["vocab_embed.embedding"][tokens]
    c = _time(w, sigma)
    angles = torch.arange(tokens.shape[1]).float()[:, None] * inv_freq(D // heads)[None]
    cos, sin = angles.cos(), angles.sin()           # (L, hd/2)
    for i in range(BLOCKS):
        x = _block(w, i, x, c, cos, sin, heads)
    shift, scale = (c @ w["output_layer.adaLN_modulation.weight"].T
                    + w["output_layer.adaLN_modulation.bias"])[:, None].chunk(2, dim=-1)
    x = _layer_norm(x, w["output_layer.norm_final.weight"]) * (1 + scale) + shift
    return x @ w["output_layer.linear.weight"].T + w["output_layer.linear.bias"]


def backbone(weights, rotary=True):
    state = {f"backbone.{k}": v for k, v in weights.items()}
    if rotary:
        state["backbone.rotary_emb.inv_freq"] = inv_freq()
    return state


def assert_parity(model, weights, gen, time_conditioning=True):
    tokens = torch.randint(0, K, (3, LENGTH), generator=gen)
    sigma = torch.rand(3, generator=gen) * 4
    with torch.no_grad():
        ours = model(tokens, sigma)
        ref = reference_logits(weights, tokens, sigma, time_conditioning)
    assert ref.abs().max() > 0.5                    # not a trivially small comparison
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- Lightning .ckpt

class ConfigNode:
    """Pickles like an OmegaConf container: its entries under ``_content``."""

    def __init__(self, **content):
        self._content = {k: ConfigNode(**v) if isinstance(v, dict) else ValueNode(v)
                         for k, v in content.items()}


class ValueNode:
    """Pickles like an OmegaConf value node: ``_val``."""

    def __init__(self, value):
        self._val = value


CALLED = []


def _side_effect(tag):
    CALLED.append(tag)


class Tokenizer:
    """Unpickling this would call code; the loader must not."""

    def __reduce__(self):
        return (_side_effect, ("tokenizer",))


DUO_HPARAMS = {"algo": {"name": "duo_base", "parameterization": "mean", "time_conditioning": True,
                        "causal_attention": False, "backbone": "dit"},
               "model": {"hidden_size": D, "cond_dim": C, "n_blocks": BLOCKS, "n_heads": HEADS,
                         "length": 128, "dropout": 0.1}, "loader": {"batch_size": "${div_up:8}"}}
MDLM_HPARAMS = {"parameterization": "subs", "time_conditioning": False, "backbone": "dit",
                "model": {"hidden_size": D, "cond_dim": C, "n_blocks": BLOCKS, "n_heads": HEADS,
                          "length": 1024, "dropout": 0.1}}


def lightning_ckpt(path, model_w, ema_w=None, hparams=DUO_HPARAMS, rotary=True):
    state = backbone(model_w, rotary)
    state["noise.sigmas"] = torch.tensor([1e-3, 1.0])            # not part of the backbone
    obj = {"epoch": 3, "global_step": 1000, "state_dict": state,
           "optimizer_states": [{"state": {}, "param_groups": [{"lr": 3e-4}]}],
           "hyper_parameters": {"config": ConfigNode(**hparams), "tokenizer": Tokenizer()}}
    if ema_w is not None:
        obj["ema"] = {"decay": 0.9999, "num_updates": 1000,
                      "shadow_params": [ema_w[n] for n in original_shapes()]}
    torch.save(obj, path)
    return path


def test_lightning_checkpoint_matches_the_original_forward_with_ema_or_model_weights(tmp_path, gen):
    model_w, ema_w = random_weights(gen), random_weights(gen)
    path = lightning_ckpt(tmp_path / "duo.ckpt", model_w, ema_w)
    CALLED.clear()
    model, info = load_dit_checkpoint(path)
    assert not CALLED                                            # nothing in the file ran
    assert "Placeholder" not in str(torch.serialization.get_safe_globals())  # stand-ins gone
    assert not model.training and info.weights == "ema" and info.layout == "lightning"
    assert (info.family, info.model_type, info.time_conditioning) == ("uniform", "duo_base", True)
    assert (info.vocab_size, info.length, info.mask_id) == (K, 128, None)
    assert (info.config.hidden, info.config.heads, info.config.blocks) == (D, HEADS, BLOCKS)
    assert_parity(model, ema_w, gen)
    model, info = load_dit_checkpoint(path, weights="model")
    assert info.weights == "model"
    assert_parity(model, model_w, gen)


def test_mdlm_lightning_checkpoint_feeds_zero_sigma(tmp_path, gen):
    weights = random_weights(gen)
    path = lightning_ckpt(tmp_path / "mdlm.ckpt", weights, hparams=MDLM_HPARAMS, rotary=False)
    model, info = load_dit_checkpoint(path)
    assert (info.family, info.time_conditioning, info.weights) == ("masked", False, "model")
    assert info.config.time_conditioning is False and info.length == 1024
    assert_parity(model, weights, gen, time_conditioning=False)
    tokens = torch.randint(0, K, (2, LENGTH), generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, torch.tensor([0.1, 3.0])),
                                   model(tokens, torch.tensor([2.0, 0.0])))


# --------------------------------------------------------------------------- Hugging Face folders

def hf_folder(path, weights, model_type="udlm", fmt="safetensors", **config):
    path.mkdir()
    cfg = {"model_type": model_type, "vocab_size": K, "model_length": 128, "hidden_dim": D,
           "cond_dim": C, "n_blocks": BLOCKS, "n_heads": HEADS, "dropout": 0.1,
           "architectures": [model_type.upper()], "return_dict": False, **config}
    (path / "config.json").write_text(json.dumps(cfg))
    state = {k: v.contiguous() for k, v in backbone(weights).items()}
    if fmt == "safetensors":
        save_file(state, str(path / "model.safetensors"))
    else:
        torch.save(state, path / "pytorch_model.bin")
    return path


@pytest.mark.parametrize("model_type, fmt, config, family, conditioned", [
    ("udlm", "safetensors", {"time_conditioning": True, "cfg": False}, "uniform", True),
    ("mdlm", "bin", {"time_conditioning": False}, "masked", False),
    ("DUO", "safetensors", {"causal": False}, "uniform", True),        # Duo's config has no flag
])
def test_hf_release_folder_matches_the_original_forward(tmp_path, gen, model_type, fmt, config,
                                                        family, conditioned):
    weights = random_weights(gen)
    path = hf_folder(tmp_path / "release", weights, model_type, fmt, **config)
    model, info = load_dit_checkpoint(path)
    assert (info.layout, info.weights, info.family) == ("hf", "release", family)
    assert info.time_conditioning is conditioned and info.length == 128
    assert_parity(model, weights, gen, time_conditioning=conditioned)


def test_bare_state_dict_needs_what_it_does_not_say(tmp_path, gen):
    weights = random_weights(gen)
    path = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in backbone(weights, rotary=False).items()}, str(path))
    with pytest.raises(UserError, match="pass heads="):
        load_dit_checkpoint(path, time_conditioning=True)
    with pytest.raises(UserError, match="pass time_conditioning="):
        load_dit_checkpoint(path, heads=HEADS)
    model, info = load_dit_checkpoint(path, heads=HEADS, time_conditioning=True)
    assert info.layout == "state_dict" and info.family is None
    assert_parity(model, weights, gen)


def test_time_conditioning_off_ignores_sigma_and_defaults_on(gen):
    assert ModelConfig().time_conditioning is True
    cfg = ModelConfig(hidden=32, blocks=1, heads=2, cond_dim=8, dropout=0.0, time_conditioning=False)
    model = DiT(cfg, 7).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2, generator=gen)
        tokens = torch.randint(0, 7, (2, 5), generator=gen)
        torch.testing.assert_close(model(tokens, torch.tensor([0.5, 4.0])),
                                   model(tokens, torch.zeros(2)))


# --------------------------------------------------------------------------- one-line errors

def expect_error(path, match, **kwargs):
    with pytest.raises(UserError, match=match) as caught:
        load_dit_checkpoint(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_path_and_unknown_layouts(tmp_path, gen):
    expect_error(tmp_path / "nowhere.ckpt", "no such file")
    (tmp_path / "empty").mkdir()
    expect_error(tmp_path / "empty", "unknown layout: a folder without config.json")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    expect_error(tmp_path / "list.pt", "unknown layout")
    folder = hf_folder(tmp_path / "other", random_weights(gen), "bert")
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    expect_error(folder, "unknown layout: no hidden_dim")
    (folder / "config.json").write_text("{not json")
    expect_error(folder, "cannot be read as JSON")


def test_missing_unexpected_and_mismatched_keys(tmp_path, gen):
    weights = random_weights(gen)
    del weights["blocks.1.attn_out.weight"]
    expect_error(lightning_ckpt(tmp_path / "a.ckpt", weights), "missing keys: blocks.1.attn_out")
    weights = random_weights(gen)
    weights["cond_map.embedding_table.weight"] = torch.randn(3, C, generator=gen)
    expect_error(lightning_ckpt(tmp_path / "b.ckpt", weights), "unexpected keys: cond_map")
    weights = random_weights(gen)
    weights["blocks.0.mlp.2.bias"] = torch.randn(D + 1, generator=gen)
    expect_error(lightning_ckpt(tmp_path / "c.ckpt", weights), "mismatched shapes: blocks.0.mlp.2")
    weights = random_weights(gen)
    ema = dict(weights)
    path = lightning_ckpt(tmp_path / "d.ckpt", weights, ema)
    obj = torch.load(path, weights_only=False)
    obj["ema"]["shadow_params"].pop()
    torch.save(obj, path)
    expect_error(path, "EMA holds")
    expect_error(lightning_ckpt(tmp_path / "e.ckpt", weights), "no EMA weights", weights="ema")
    expect_error(hf_folder(tmp_path / "f", weights, n_heads=3), "does not fit")
    expect_error(hf_folder(tmp_path / "g", weights, hidden_dim=64), "config says hidden = 64")
    expect_error(hf_folder(tmp_path / "h", weights, causal=True), "autoregressive")
    expect_error(hf_folder(tmp_path / "i", weights), "one set of weights", weights="model")


def test_corrupt_files_and_code_in_pickles_are_refused(tmp_path, gen):
    (tmp_path / "junk.ckpt").write_bytes(os.urandom(256))
    expect_error(tmp_path / "junk.ckpt", "cannot be read with torch.load")
    good = lightning_ckpt(tmp_path / "good.ckpt", random_weights(gen))
    (tmp_path / "cut.ckpt").write_bytes(good.read_bytes()[:4000])
    expect_error(tmp_path / "cut.ckpt", "cannot be read with torch.load")
    folder = hf_folder(tmp_path / "release", random_weights(gen))
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    expect_error(folder, "cannot be read as safetensors")
    torch.save({"state_dict": {}, "call": _OsCall()}, tmp_path / "os.ckpt")
    expect_error(tmp_path / "os.ckpt", "cannot be read with torch.load.*blocked")


class _OsCall:
    """Pickles as a call into the os module, which weights_only loading refuses outright."""

    def __reduce__(self):
        return (os.getcwd, ())
