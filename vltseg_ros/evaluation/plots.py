"""Charts of an evaluation: per-class IoU bars and the row-normalized confusion matrix.

matplotlib is imported inside the functions and drawn with its Agg backend through a
:class:`matplotlib.figure.Figure` (no pyplot, no global backend switch, no display needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def iou_chart(names: Sequence[str], iou: np.ndarray, title: str, path: Path) -> Path:
    """Horizontal bar chart of (C,) IoU values in [0, 1] (NaN: "n/a"), written as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.nan_to_num(np.asarray(iou, dtype=np.float64), nan=0.0) * 100.0
    figure = Figure(figsize=(7.0, 0.3 * len(names) + 1.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.barh(positions, values, color="#4878a8")
    for y, (value, raw) in enumerate(zip(values, iou, strict=True)):
        text = "n/a" if np.isnan(raw) else f"{value:.1f}"
        inside = value > 85.0  # label inside the end of long bars, after short ones
        axes.text(
            value - 1.0 if inside else value + 1.0,
            y,
            text,
            va="center",
            ha="right" if inside else "left",
            color="white" if inside else "black",
            fontsize=8,
        )
    axes.set_yticks(positions, labels=list(names), fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("IoU (%)")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def confusion_chart(names: Sequence[str], normalized: np.ndarray, path: Path) -> Path:
    """Heat map of a (C, C + 1) row-normalized confusion matrix (last column: unlabeled)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = 0.4 * len(names) + 3.0
    figure = Figure(figsize=(size + 1.0, size), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(np.arange(len(names) + 1), labels=[*names, "unlabeled"], rotation=90)
    axes.set_yticks(np.arange(len(names)), labels=list(names))
    axes.tick_params(labelsize=7)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("target class")
    axes.set_title("confusion matrix (each row divided by its target pixels)", fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
