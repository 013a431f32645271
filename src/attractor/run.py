"""Open a finished (or checkpointed) training run for probing.

``load_run(RUN_DIR)`` rebuilds the data pool from the saved config, checks it against the
fingerprint saved in ``membership.json`` (so the ids mean the same sequences), loads the EMA
weights into a DiT in eval mode and checks that the tokenizer matches the model's vocabulary.
``precision="bf16"`` runs the denoiser under bf16 autocast (logits come back in bf16); the
samplers and entropies read them chunk-wise in float32 and form posteriors in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from attractor.errors import UserError, require

PRECISIONS = ("fp32", "bf16")


@dataclass
class Run:
    """A model and the sequences it is probed on: a training run (``load_run``) or any model
    opened by an adapter with the user's members and non-members
    (:func:`attractor.adapters.subject.load_subject`)."""

    directory: Path                   # where probes/ is written
    config: object                    # attractor.train.config.TrainConfig; None for other models
    vocab_size: int
    model: torch.nn.Module            # (zt, sigma) -> logits, eval mode, on ``device``
    tokenizer: object                 # tokenizers.Tokenizer
    dataset: object                   # attractor.data.Dataset (the whole pool)
    train_ids: torch.Tensor           # (n_train,) int64 pool ids the model was trained on
    test_ids: torch.Tensor            # (n_test,) int64 held-out pool ids
    schedule: object
    step: int
    device: torch.device
    precision: str = "fp32"           # fp32 | bf16 (autocast of the denoiser's forward pass)
    checker: object = None            # str -> bool: a valid sentence of the corpus (or None)
    family: str = "uniform"           # the noise process: uniform | masked
    mask_id: int | None = None        # the absorbing state of a masked model
    source: dict = field(default_factory=dict)    # what was loaded, for the probes' JSON

    @property
    def finite(self) -> bool:
        """False when training diverged: some weight is nan or inf."""
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    @property
    def train_sequences(self) -> torch.Tensor:
        return self.dataset.sequences[self.train_ids]

    @property
    def test_sequences(self) -> torch.Tensor:
        return self.dataset.sequences[self.test_ids]

    def denoiser(self):
        """zt (B, L) int64, sigma (B,) -> logits (B, L, K), float32 or bf16, without gradients.
        For a DiT it also takes ``rows`` (B, L) bool and returns the (n, K) logits of those
        positions, its output layer run on them alone (``takes_rows``, for
        :func:`attractor.sampler.logits_at`, which selects the rows of any other model)."""
        model, device = self.model, self.device
        bf16 = self.precision == "bf16"
        from attractor.model import DiT

        @torch.no_grad()
        def call(zt: torch.Tensor, sigma: torch.Tensor, rows: torch.Tensor | None = None
                 ) -> torch.Tensor:
            zt, sigma = zt.to(device), sigma.to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                if rows is None:
                    return model(zt, sigma)
                keep = rows.to(device)
                return model(zt, sigma, head=lambda h, w, b: F.linear(h[keep], w, b))

        call.takes_rows = isinstance(model, DiT)
        return call


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and (path / "membership.json").is_file()


def load_run(run_dir: str | Path, device: str = "auto", weights: str = "ema",
             cache_dir: str | Path | None = None, precision: str = "fp32") -> Run:
    """Load a run directory written by ``attractor train``; see the module docstring."""
    require(precision in PRECISIONS,
            f"probe precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    from attractor.data import build_dataset, load_tokenizer
    from attractor.data.corpus import sentence_checker
    from attractor.device import resolve_device
    from attractor.schedule import get_schedule
    from attractor.train import checkpoint as ckpt
    from attractor.train.config import read_run_config
    from attractor.train.objectives import build_model, mask_id
    from attractor.train.rundir import check_same_data

    dev = resolve_device(device)        # a device this machine lacks: refused first
    run_dir = Path(run_dir)
    require(run_dir.is_dir(), f"{run_dir} does not exist or is not a directory")
    require(is_run_dir(run_dir), f"{run_dir} is not a run directory (no config.json/membership.json)")
    cfg, meta = read_run_config(run_dir)
    found = ckpt.find_checkpoint(run_dir)
    require(found is not None, f"{run_dir} has no checkpoint: train it first")
    try:
        tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    except Exception as err:
        raise UserError(f"cannot read {run_dir / 'tokenizer.json'} ({err})") from err
    vocab = int(meta["vocab_size"])
    tok_vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    require(tok_vocab == vocab, f"tokenizer has {tok_vocab} tokens but the model was trained "
                                f"with K = {vocab}")
    model = build_model(cfg.model, cfg.family, vocab)
    state = ckpt.load_weights(found, weights)
    ckpt.check_weights(state, model.state_dict(), found / f"{weights}.safetensors")
    model.load_state_dict(state)
    model.to(dev).eval()
    dataset = build_dataset(cfg.data, cache_dir=cache_dir)
    membership = check_same_data(run_dir, dataset,    # the ids mean the same sequences
                                 dataset.train_ids(fraction=cfg.fraction, num_train=cfg.num_train))
    return Run(directory=run_dir, config=cfg, vocab_size=model.vocab_size, model=model,
               tokenizer=tokenizer, family=cfg.family, mask_id=mask_id(cfg.family, vocab),
               dataset=dataset, train_ids=torch.tensor(membership.train_ids, dtype=torch.long),
               test_ids=torch.tensor(membership.test_ids, dtype=torch.long),
               schedule=get_schedule(cfg.schedule), step=ckpt.checkpoint_step(run_dir) or 0,
               device=dev, precision=precision, checker=sentence_checker(cfg.data))
