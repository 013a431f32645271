"""Zero-temperature retrieval (Experiment 1) on planted denoisers whose answers are known."""

import pytest
import torch
from _planted import BayesMemoriser, planted_run, random_sequences, standard_error

from attractor.config import from_dict
from attractor.probes.experiments import DeterministicConfig
from attractor.probes.recovery import run_recovery
from attractor.retrieval import CYCLE, FIXED_POINT, UNFINISHED, annealed, fixed_point
from attractor.schedule import LogLinear

K, L = 32, 24


def _map(step):
    """A denoiser whose argmax at z is step(z): logits 20 * one_hot(step(z))."""
    def denoise(zt, sigma):
        return 20.0 * torch.nn.functional.one_hot(step(zt), K).float()
    return denoise


def test_fixed_points_and_cycles_are_told_apart():
    z = torch.randint(0, K, (3, L), generator=torch.Generator().manual_seed(0))
    t = torch.full((3,), 0.25)
    still = fixed_point(_map(lambda x: x), z, t, LogLinear())
    assert still.outcome.tolist() == [FIXED_POINT] * 3 and still.iterations.tolist() == [1] * 3
    assert torch.equal(still.z, z)
    flip = fixed_point(_map(lambda x: x ^ 1), z, t, LogLinear())         # period 2
    assert flip.outcome.tolist() == [CYCLE] * 3 and flip.cycle_length.tolist() == [2] * 3
    assert flip.iterations.tolist() == [2] * 3 and torch.equal(flip.z, z)
    walk = fixed_point(_map(lambda x: (x + 1) % 7), z % 7, t, LogLinear(), max_iterations=5)
    assert walk.outcome.tolist() == [UNFINISHED] * 3          # period 7 > 5 updates
    settle = fixed_point(_map(lambda x: torch.clamp(x - 1, min=0)), z, t, LogLinear(), 40)
    assert settle.outcome.tolist() == [FIXED_POINT] * 3 and bool((settle.z == 0).all())
    assert settle.iterations.tolist() == (z.max(-1).values + 1).tolist()


def test_annealed_retrieval_of_an_exact_memoriser_returns_the_stored_sequence():
    stored = random_sequences(8, L, K)
    zt = stored.clone()
    zt[:, :3] = (zt[:, :3] + 5) % K                                       # 3 of 24 changed
    out = annealed(BayesMemoriser(stored, K), zt, torch.full((8,), 0.25), LogLinear(), 10)
    assert torch.equal(out, stored)


@pytest.fixture(scope="module")
def memoriser_run(tmp_path_factory):
    seqs = random_sequences(16 + 240, L, K)
    return planted_run(tmp_path_factory.mktemp("planted"), seqs, 16,
                       BayesMemoriser(seqs[:16], K), K)


def _recovery(run, **changes):
    cfg = from_dict(DeterministicConfig, {"fractions": (0.1,), "num_sequences": 240,
                                          "common": {"bootstrap": 50}, **changes})
    result = run_recovery(run, cfg, torch.Generator().manual_seed(3), progress=False)
    return result.summary[0]


def test_memoriser_recovers_training_tokens_and_leaves_unseen_ones_at_the_unigram_level(
        memoriser_run):
    s = _recovery(memoriser_run)                                          # default: annealed
    assert DeterministicConfig().dynamics == "annealed"
    assert s["train"]["token_recovery"]["mean"] >= 0.95
    test, base = s["test"]["token_recovery"]["mean"], s["test"]["unigram_recovery"]["mean"]
    n_changed = 240 * round(0.1 * L)
    assert abs(test - base) < 4 * standard_error(base, n_changed), (test, base)


def test_annealed_and_fixed_point_retrieval_do_not_depend_on_the_grid(memoriser_run):
    by_steps = [_recovery(memoriser_run, reverse_steps=n)["train"]["token_recovery"]["mean"]
                for n in (25, 50, 100, 200)]
    assert max(by_steps) - min(by_steps) < 0.02, by_steps
    fixed = _recovery(memoriser_run, dynamics="fixed-point")
    assert fixed["train"]["token_recovery"]["mean"] >= 0.95
    assert fixed["train"]["fixed_point"]["mean"] == 1.0 and fixed["train"]["iterations"]["mean"] == 2


def test_the_posterior_argmax_control_depends_on_the_grid_spacing(memoriser_run):
    """Its stay weight K alpha_t x_theta[z_t] ~ 0.01 (the smoothing) beats the move weight
    ~Delta x_theta[x] unless Delta > ~0.01: 10 steps from t = 0.25 (Delta = 0.025) recover, 100
    steps (Delta = 0.0025) do not."""
    coarse = _recovery(memoriser_run, dynamics="posterior-argmax", reverse_steps=10)
    fine = _recovery(memoriser_run, dynamics="posterior-argmax", reverse_steps=100)
    assert coarse["train"]["token_recovery"]["mean"] >= 0.95
    assert fine["train"]["token_recovery"]["mean"] <= 0.05


def test_membership_scores_of_an_exact_memoriser(memoriser_run):
    """Members have near-zero loss and entropy under a memoriser: the NELBO, entropy and Min-K%
    scores separate them (AUC > 0.9); the report rows carry intervals and TPRs."""
    from attractor.probes.entropy import EntropyConfig, run_entropy

    cfg = from_dict(EntropyConfig, {"num_sequences": 200, "nelbo_samples": 4,
                                    "common": {"bootstrap": 50}})
    result = run_entropy(memoriser_run, cfg, torch.Generator().manual_seed(4), progress=False)
    scores = result.notes["membership"]["scores"]
    for name in ("nelbo", "entropy", "min_k"):
        assert scores[name]["auroc"]["mean"] > 0.9, (name, scores[name]["auroc"])
        assert scores[name]["auroc"]["lo"] <= scores[name]["auroc"]["mean"]
    assert scores["nelbo"]["members"] == 16 and scores["nelbo"]["nonmembers"] == 200
    assert scores["nelbo"]["tpr_at_fpr_0.001"]["at_fpr_zero"]           # 200 < 1000 non-members
    assert result.notes["membership"]["best"]["best"] in ("nelbo", "entropy", "min_k", "zlib")
