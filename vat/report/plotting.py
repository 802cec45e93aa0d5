"""What every figure of `vat.report` shares: the headless backend, new figures, saving, colours.

Importing this module selects matplotlib's non-interactive Agg backend (so it works on a headless
training node); the figure modules (`vat.report.figures`, `vat.report.curves`) create their
figures with `subplots` and write them with `save_figure`, never through pyplot themselves. Import
`vat.report.run` alone when only text output is wanted.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

# Before pyplot is imported: figures are written to files, never shown, and a headless node has
# no display for an interactive backend.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from vat.report.format import num

POS, NEG = "tab:blue", "tab:red"  # moved up (more endorsed) / moved down
POS_LIGHT, NEG_LIGHT = "#c6dbef", "#fcbba1"
DPI = 120


def subplots(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """A new figure and its axes: `matplotlib.pyplot.subplots`, under the Agg backend."""
    return plt.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write the figure as PNG and close it (a long run makes many; open figures leak memory)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return p


def floats(xs: Iterable[Any]) -> np.ndarray:
    """Floats with None -> NaN and the JSON strings "inf"/"-inf" -> +-inf (`vat.report.format.num`)."""
    return np.array([num(x) for x in xs], dtype=float)


def note(ax: Any, text: str) -> None:
    """A boxed message in the middle of the axes (why a panel has nothing to show)."""
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        color="0.3",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9},
        zorder=10,
    )
