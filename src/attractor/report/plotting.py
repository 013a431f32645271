"""Matplotlib, loaded lazily with a headless backend and the house look.

Plotting is an optional extra (``pip install attractor[plot]``); asking for a figure without it
is a :class:`~attractor.errors.UserError`, not an ImportError traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from attractor.errors import UserError

TRAIN_COLOR = "#1f5fa8"
TEST_COLOR = "#d2691e"
GENERATED_COLOR = "#2e8b57"
CONTROL_COLOR = "#808080"


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or a one-line error if matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise UserError("figures need matplotlib: pip install 'attractor[plot]'") from err
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 9,
            "legend.frameon": False,
        }
    )
    return plt


def legend(ax, **kwargs) -> None:
    """``ax.legend`` when something on the axes has a label (else matplotlib warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def png(fig) -> bytes:
    """``fig`` as PNG bytes (for a page that embeds it); the figure is closed."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def save(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    try:
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    except OSError as err:              # a full disk: no half-written figure is left behind
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    fig.clear()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
