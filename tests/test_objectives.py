"""The three training objectives: uniform NELBO, masked NELBO, autoregressive cross-entropy."""

import math

import pytest
import torch

from attractor.model import ModelConfig
from attractor.schedule import LogLinear
from attractor.train.objectives import Objective, build_model, mask_id, model_vocab

K = 11
CFG = ModelConfig(hidden=16, blocks=2, heads=2, cond_dim=8, dropout=0.0, time_features=16)


def test_the_autoregressive_loss_is_the_summed_next_token_cross_entropy(gen):
    model = build_model(CFG, "ar", K)
    for p in model.parameters():                          # away from the zero initialisation
        torch.nn.init.normal_(p, std=0.3, generator=gen)
    x0 = torch.randint(0, K, (3, 7), generator=gen)
    t = torch.rand(3, generator=gen)
    loss = Objective("ar", LogLinear(), K).loss(model, x0, x0, t)
    logits = model(x0, torch.zeros(3))
    expected = torch.zeros(3, 7)
    for b in range(3):
        for pos in range(1, 7):                            # token pos from the prefix < pos
            expected[b, pos] = -logits[b, pos - 1].log_softmax(-1)[x0[b, pos]]
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert bool((loss[:, 0] == 0).all())


def test_causal_attention_never_sees_a_later_token(gen):
    model = build_model(CFG, "ar", K)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3, generator=gen)
    x = torch.randint(0, K, (2, 9), generator=gen)
    y = x.clone()
    y[:, 5:] = (y[:, 5:] + 3) % K                           # change tokens 5..8
    a, b = model(x, torch.zeros(2)), model(y, torch.zeros(2))
    torch.testing.assert_close(a[:, :5], b[:, :5])          # predictions at 0..4 unchanged
    assert not torch.allclose(a[:, 5:], b[:, 5:])
    bidirectional = build_model(CFG, "uniform", K)
    assert not bidirectional.causal and model.causal


def test_the_masked_family_has_one_more_id_and_masks_at_rate(gen):
    assert model_vocab("masked", K) == K + 1 and mask_id("masked", K) == K
    assert model_vocab("uniform", K) == K and mask_id("ar", K) is None
    objective = Objective("masked", LogLinear(), K)
    x0 = torch.randint(0, K, (500, 40), generator=gen)
    t = torch.full((500,), 0.4)
    zt = objective.corrupt(x0, t, gen)
    rate = float((zt == K).double().mean())
    assert rate == pytest.approx(0.4 * 0.999, abs=4 * math.sqrt(0.24 / zt.numel()))
    assert bool((zt[zt != K] == x0[zt != K]).all())         # unmasked tokens untouched
    model = build_model(CFG, "masked", K)
    loss = objective.loss(model, x0[:4], zt[:4], t[:4])
    assert bool((loss[zt[:4] != K] == 0).all()) and bool((loss[zt[:4] == K] > 0).all())
    # a freshly built model predicts uniformly over the K ids (the mask excluded): -log(1/K)
    weight = 0.999 / (1 - float(LogLinear().alpha(torch.tensor(0.4))))
    assert float(loss[zt[:4] == K].mean()) == pytest.approx(weight * math.log(K), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["masked", "ar"])
def test_each_family_trains_probes_and_refuses_what_it_does_not_define(family, tmp_path):
    """A small training set is memorised (train loss far below test); every probe runs; the
    uniform-only dynamics and resuming as another family are one-line errors."""
    from _runs import train_small

    from attractor.cli import main
    from attractor.config import from_dict
    from attractor.errors import UserError
    from attractor.probes.experiments import DeterministicConfig
    from attractor.probes.registry import run_probe
    from attractor.run import load_run

    run_dir = tmp_path / family
    summary = train_small(run_dir, num_train=16, steps=300, corpus=600, test_size=32,
                          data={"block_length": 12}, family=family, eval_sequences=32,
                          optim={"ema": 0.99})
    assert summary["test_nelbo"] > 2 * summary["train_nelbo"]
    run = load_run(run_dir, device="cpu")
    assert run.family == family and (run.mask_id is not None) == (family == "masked")
    cfg = from_dict(DeterministicConfig, {"fractions": (0.2,), "num_sequences": 16,
                                          "reverse_steps": 4, "common": {"bootstrap": 20}})
    result = run_probe("recovery_deterministic", run, cfg, torch.Generator().manual_seed(0),
                       progress=False)
    s = result.summary[0]
    assert s["train"]["recovery"]["mean"] > s["test"]["recovery"]["mean"]
    with pytest.raises(UserError, match="uniform-state models only"):
        run_probe("recovery_deterministic", run, from_dict(
            DeterministicConfig, {"dynamics": "fixed-point", "num_sequences": 2}),
            torch.Generator().manual_seed(0), progress=False)
    other = "ar" if family == "masked" else "masked"
    assert main(["train", "--out", str(run_dir), "--resume", "--family", other]) == 2
