"""Evaluation reports: per-class IoU, mIoU, accuracy and latency as Markdown, JSON and charts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vltseg_ros.evaluation.metrics import ConfusionMatrix

RANDOM_WEIGHTS_NOTE = "random weights: these numbers are meaningless"


@dataclass
class EvaluationReport:
    """What one evaluation run measured.

    Attributes:
        class_names: name per train id (index into the confusion matrix rows).
        confusion: the accumulated pixel counts.
        latencies_ms: per-frame latency [ms] (offline: engine time per frame; live replay:
            the node's inference latency).
        frames: frames scored against a label.
        dropped_frames: frames the node dropped during a live replay; None offline.
        source: the bag (or folder) the frames came from.
        model: model (architecture) name.
        checkpoint: weights file; "" = random weights (the numbers are then meaningless).
    """

    class_names: tuple[str, ...]
    confusion: ConfusionMatrix
    latencies_ms: list[float] = field(default_factory=list)
    frames: int = 0
    dropped_frames: int | None = None
    source: str = ""
    model: str = ""
    checkpoint: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """One name per confusion-matrix class (``class_<id>`` where class_names is short)."""
        count = self.confusion.num_classes
        given = tuple(self.class_names[:count])
        return given + tuple(f"class_{i}" for i in range(len(given), count))

    def latency_stats(self) -> dict[str, float | int | None]:
        """count, mean, p50, p95 and max of ``latencies_ms`` (None when there are none)."""
        values = np.asarray(self.latencies_ms, dtype=np.float64)
        if values.size == 0:
            return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
        return {
            "count": int(values.size),
            "mean": float(values.mean()),
            "p50": float(np.percentile(values, 50)),
            "p95": float(np.percentile(values, 95)),
            "max": float(values.max()),
        }

    def to_dict(self) -> dict:
        """JSON-ready summary; NaN (class absent, nothing scored) becomes None.

        Keys: model, checkpoint, random_weights, source, frames, dropped_frames, pixels,
        miou, pixel_accuracy, iou (class name -> IoU in [0, 1]), latency_ms (count, mean, p50,
        p95, max), confusion (columns: class names + "unlabeled"; matrix: pixel counts, rows =
        target classes).
        """
        names = self.names
        return {
            "model": self.model,
            "checkpoint": self.checkpoint,
            "random_weights": not self.checkpoint,
            "source": self.source,
            "frames": self.frames,
            "dropped_frames": self.dropped_frames,
            "pixels": self.confusion.pixels,
            "miou": _finite(self.confusion.miou()),
            "pixel_accuracy": _finite(self.confusion.pixel_accuracy()),
            "iou": {
                name: _finite(value)
                for name, value in zip(names, self.confusion.iou().tolist(), strict=True)
            },
            "latency_ms": self.latency_stats(),
            "confusion": {
                "rows": list(names),
                "columns": [*names, "unlabeled"],
                "matrix": self.confusion.matrix.tolist(),
            },
        }


def markdown_table(report: EvaluationReport) -> str:
    """The report as Markdown: a warning for random weights, a summary and a per-class table."""
    lines = ["# Segmentation evaluation", ""]
    if not report.checkpoint:
        lines += [f"> **WARNING: no checkpoint, {RANDOM_WEIGHTS_NOTE}.**", ""]
    if report.frames == 0:
        lines += ["> No frame had a label: accuracy was not measured.", ""]
    latency = report.latency_stats()
    rows = [
        ("source", report.source or "-"),
        ("model", report.model or "-"),
        ("checkpoint", report.checkpoint or "none (random weights)"),
        ("frames scored", str(report.frames)),
        ("pixels scored", str(report.confusion.pixels)),
    ]
    if report.dropped_frames is not None:
        rows.append(("frames dropped", str(report.dropped_frames)))
    rows += [
        ("mIoU (%)", percent(report.confusion.miou())),
        ("pixel accuracy (%)", percent(report.confusion.pixel_accuracy())),
        ("latency frames", str(latency["count"])),
    ]
    rows += [
        (f"latency {key} (ms)", _number(latency[key])) for key in ("p50", "p95", "mean", "max")
    ]
    lines += ["| | |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows), ""]
    lines += ["| class | IoU (%) | target pixels |", "|---|---:|---:|"]
    target = report.confusion.matrix.sum(axis=1)
    for name, value, count in zip(report.names, report.confusion.iou(), target, strict=True):
        lines.append(f"| {name} | {percent(value)} | {int(count)} |")
    lines += [
        "",
        "IoU is n/a for classes absent from both labels and predictions; mIoU averages the "
        "others (as cityscapesscripts does). Unlabeled predictions (255) count as misses.",
        "",
    ]
    return "\n".join(lines)


def write_report(report: EvaluationReport, out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.json, iou.png and confusion.png into ``out_dir`` (created).

    Returns:
        {"markdown", "json", "iou_chart", "confusion_chart"} -> the written paths.
    """
    from vltseg_ros.evaluation.plots import confusion_chart, iou_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out_dir / "report.md",
        "json": out_dir / "report.json",
        "iou_chart": out_dir / "iou.png",
        "confusion_chart": out_dir / "confusion.png",
    }
    paths["markdown"].write_text(markdown_table(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    title = f"{report.model or 'model'}: mIoU {percent(report.confusion.miou())} %"
    if not report.checkpoint:
        title += f" ({RANDOM_WEIGHTS_NOTE})"
    iou_chart(report.names, report.confusion.iou(), title, paths["iou_chart"])
    confusion_chart(report.names, report.confusion.row_normalized(), paths["confusion_chart"])
    return paths


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def percent(value: float) -> str:
    """A fraction in [0, 1] as a percentage with 2 decimals ("n/a" for NaN)."""
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"


def _number(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
