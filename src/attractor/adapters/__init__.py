"""Loaders that bring other codebases' checkpoints into attractor's own modules.

:func:`load_dit_checkpoint` reads the released Duo / UDLM / MDLM DiT checkpoints (Lightning
``.ckpt`` files and Hugging Face release folders) into :class:`attractor.model.DiT`, from local
files only (docs/checkpoints.md).
"""

from attractor.adapters.dit_checkpoint import CheckpointInfo, load_dit_checkpoint
from attractor.adapters.dit_layout import parameter_names

__all__ = ["CheckpointInfo", "load_dit_checkpoint", "parameter_names"]
