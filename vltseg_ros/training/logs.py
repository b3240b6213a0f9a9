"""What a training run writes besides checkpoints: JSON-lines logs and the loss-curve plot.

- ``train_log.jsonl``: one record every ``train.log_interval`` iterations (iteration, mean
  loss and loss parts over the interval, lr, gradient norm, seconds per iteration);
- ``metrics.jsonl``: one record per evaluated domain and evaluation (iteration, target,
  domain, mIoU, pixel accuracy, IoU per class; values in [0, 1], NaN written as null);
- ``loss.png``: total loss per iteration, its moving average and the lr, redrawn at every
  checkpoint;
- ``encoder_init.json``: what the encoder's initialization from ``model.init`` loaded, dropped
  and left at random init (:class:`vltseg_ros.training.encoder_init.EncoderInit`; not written
  on resume, which loads the checkpoint instead).

On resume, records after the resumed iteration (written by the interrupted run after its last
checkpoint) are dropped by :func:`truncate_jsonl`, so the files describe one run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vltseg_ros.io.files import atomic_path, write_text

TRAIN_LOG = "train_log.jsonl"
METRICS_LOG = "metrics.jsonl"
LOSS_PLOT = "loss.png"
ENCODER_INIT_LOG = "encoder_init.json"


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON record (NaN / infinity written as null) as a line to ``path``."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(_finite(record)) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it does not exist)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def truncate_jsonl(path: Path, last_iteration: int) -> None:
    """Keep only the records of ``path`` whose ``iteration`` is at most ``last_iteration``."""
    if not path.is_file():
        return
    kept = [r for r in read_jsonl(path) if int(r.get("iteration", 0)) <= last_iteration]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def loss_curve(history: Mapping[str, Sequence[float]], path: Path, title: str = "") -> Path:
    """Plot ``history`` (``iteration``, ``loss``, ``lr`` lists of equal length) as PNG.

    The raw total loss is drawn thin, its moving average (window ~2 % of the run) thick, the
    lr on a second axis; matplotlib's Agg canvas is used directly (no display needed).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    iterations = np.asarray(history.get("iteration", []), dtype=np.float64)
    losses = np.asarray(history.get("loss", []), dtype=np.float64)
    figure = Figure(figsize=(8.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if losses.size:
        axes.plot(iterations, losses, color="#9ab7d3", linewidth=0.6, label="loss")
        window = max(1, losses.size // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        axes.plot(
            iterations[window - 1 :],
            smooth,
            color="#1f4e79",
            linewidth=1.6,
            label=f"loss, mean of {window}",
        )
        lr_axes = axes.twinx()
        lr_axes.plot(iterations, history.get("lr", []), color="#c0504d", linewidth=1.0)
        lr_axes.set_ylabel("lr (head)", color="#c0504d")
        axes.legend(loc="upper right", fontsize=8)
    axes.set_xlabel("iteration")
    axes.set_ylabel("total loss")
    axes.set_title(title or "training loss", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as staged:
        figure.savefig(staged, format="png")
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
