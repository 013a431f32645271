"""attractor: is a diffusion language model memorising its training data or generalising?"""

__version__ = "0.1.0"
