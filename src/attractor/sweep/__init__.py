"""Sweeps over training-set size and model size, resumable, with the probes run on every model."""
