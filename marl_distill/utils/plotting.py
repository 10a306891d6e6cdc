"""Figures without a display: one place that picks matplotlib's file backend and writes PNGs atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marl_distill.utils.files import atomic_write


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported late: plotting is the slowest import we have)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG (temp file, then rename) and free it. The image grows to hold every title, label and
    legend (a long label is never cut at the figure's edge), with a white margin around them."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1))
    pyplot().close(fig)
    return Path(path)
