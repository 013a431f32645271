"""The README's main job: a CPU-sized sweep on the synthetic corpus, and its report."""

from __future__ import annotations

from dataclasses import replace

from attractor.data import DataConfig
from attractor.sweep.config import ProbeSettings, SweepConfig

# Training sizes from tens to tens of thousands of sequences: dense (x2) through the memorisation
# regime of a nano model at this budget, then x4 up to (almost) the whole 60k-sentence pool.
# The corpus keeps the grammar's syntax but only the 4 most frequent words of each open class
# (99 words in all): at this CPU budget a nano model can learn its regularities, so the large
# training sets reach a real generalisation regime rather than an undertrained one.
DEMO = SweepConfig(
    data=DataConfig(corpus="synthetic", block_length=32, corpus_size=60000, test_size=1000,
                    synthetic_words=4),
    models=("nano",),
    sizes=(32, 64, 128, 256, 1024, 4096, 16384, 59000),
    steps=2000, batch_size=64, lr=3e-3, warmup=100, ema=0.99, loss_on_padding=True,
    precision="fp32",   # nano is too small for bf16 to pay off on a CPU (see benchmarks/)
    probes=ProbeSettings(num_sequences=256, reverse_steps=25, num_samples=64, generate_steps=50,
                         entropy_sequences=128, bootstrap=500),
)

# About a minute: two sizes, short training, few probe sequences (used by a smoke test).
QUICK = replace(
    DEMO,
    data=replace(DEMO.data, corpus_size=4000, test_size=200),
    sizes=(32, 3000), steps=600,
    probes=ProbeSettings(num_sequences=24, times=(0.1, 0.25, 0.5), fractions=(0.1, 0.3, 0.5),
                         reverse_steps=10, num_samples=24, generate_steps=20,
                         entropy_sequences=48, bootstrap=200),
)


def demo_config(quick: bool = False) -> SweepConfig:
    return QUICK if quick else DEMO
