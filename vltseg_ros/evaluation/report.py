"""Evaluation reports: per-class IoU, mIoU, accuracy, calibration (ECE), latency and anomaly
detection (AUROC, AP, FPR at 95 % TPR) as Markdown, JSON and charts. A report's files are
written together or not at all (:func:`vltseg_ros.io.files.staged`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.io.files import staged

if TYPE_CHECKING:  # calibration imports torch; reports are also written without it
    from vltseg_ros.evaluation.anomaly import AnomalyMetrics
    from vltseg_ros.evaluation.calibration import CalibrationResult

RANDOM_WEIGHTS_NOTE = "random weights: these numbers are meaningless"


def random_weights_warning(checkpoint: str) -> list[str]:
    """A report's Markdown warning lines when there is no ``checkpoint`` (none otherwise)."""
    return [] if checkpoint else [f"> **WARNING: no checkpoint, {RANDOM_WEIGHTS_NOTE}.**", ""]


def checkpoint_text(checkpoint: str) -> str:
    """The checkpoint as a report names it."""
    return checkpoint or "none (random weights)"


BASELINE_METHOD = "max_probability"
"""The anomaly score reported beside the chosen one: 1 - the winning-class probability."""
ANOMALY_KEYS = ("auroc", "average_precision", "fpr_at_95_tpr")
"""The :class:`AnomalyMetrics` fields reported, in table order."""
ANOMALY_NAMES = ("AUROC (%)", "AP (%)", "FPR at 95 % TPR (%)")
"""Their column names in the Markdown tables."""


@dataclass(frozen=True)
class AnomalyReport:
    """Pixel-level anomaly detection of one run (an anomaly data set, a bag's anomaly truth).

    Attributes:
        method: the anomaly score evaluated (:data:`vltseg_ros.inference.scores.ANOMALY_METHODS`).
        metrics: score -> its metrics: ``method`` first, then :data:`BASELINE_METHOD` (from the
            same forward pass) unless ``method`` is that.
        frames: frames with anomaly truth.
        source, model, checkpoint, processes: as in :class:`EvaluationReport`.
    """

    method: str
    metrics: dict[str, AnomalyMetrics]
    frames: int = 0
    source: str = ""
    model: str = ""
    checkpoint: str = ""
    processes: int = 1

    @property
    def chosen(self) -> AnomalyMetrics:
        """The metrics of ``method``."""
        return self.metrics[self.method]

    def to_dict(self) -> dict:
        """JSON-ready: model, checkpoint, random_weights, source, frames, processes, method,
        baseline, pixels, anomaly_pixels, sampled_pixels, auroc, average_precision,
        fpr_at_95_tpr (of ``method``, in [0, 1]) and metrics (score ->
        :meth:`AnomalyMetrics.to_dict`)."""
        chosen = self.chosen.to_dict()
        counts = ("pixels", "anomaly_pixels", "sampled_pixels")
        return {
            **_provenance(self),
            "method": self.method,
            "baseline": BASELINE_METHOD,
            **{key: chosen[key] for key in counts},
            **{key: chosen[key] for key in ANOMALY_KEYS},
            "metrics": {name: metrics.to_dict() for name, metrics in self.metrics.items()},
        }

    def markdown_rows(self) -> list[str]:
        """A Markdown table: one row per score (AUROC, AP, FPR at 95 % TPR in percent)."""
        lines = [f"| score | {' | '.join(ANOMALY_NAMES)} |", "|---|---:|---:|---:|"]
        for name, metrics in self.metrics.items():
            values = " | ".join(percent(getattr(metrics, key)) for key in ANOMALY_KEYS)
            lines.append(f"| {name}{_role(name, self.method)} | {values} |")
        return lines


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
        calibration: reliability of the winning-class probability on the scored pixels (ECE,
            15 bins), or None when not measured (no confidence, no labelled pixel).
        anomaly: anomaly detection against anomaly truth, or None when there was none.
        class_map: the class map whose output classes were scored (labels and predictions
            mapped), e.g. ``traversability (config/class_maps/traversability.yaml)``; "" =
            the model's classes.
        processes: how many processes shared the frames (torchrun's world size; 1 alone).
    """

    class_names: tuple[str, ...]
    confusion: ConfusionMatrix
    latencies_ms: list[float] = field(default_factory=list)
    frames: int = 0
    dropped_frames: int | None = None
    source: str = ""
    model: str = ""
    checkpoint: str = ""
    calibration: CalibrationResult | None = None
    anomaly: AnomalyReport | None = None
    class_map: str = ""
    processes: int = 1

    @property
    def ece(self) -> float:
        """Expected calibration error in [0, 1] (NaN when not measured)."""
        return math.nan if self.calibration is None else self.calibration.ece

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

        Keys: model, checkpoint, random_weights, source, frames, processes, class_map (None:
        the model's classes), dropped_frames, pixels,
        miou, pixel_accuracy, iou (class name -> IoU in [0, 1]), latency_ms (count, mean, p50,
        p95, max), confusion (columns: class names + "unlabeled"; matrix: pixel counts, rows =
        target classes), ece (in [0, 1]), calibration (:meth:`CalibrationResult.to_dict`: ece,
        pixels and the per-bin statistics), anomaly (:meth:`AnomalyReport.to_dict`); the last
        three None when not measured.
        """
        names = self.names
        return {
            **_provenance(self),
            "class_map": self.class_map or None,
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
            "ece": _finite(self.ece),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "anomaly": None if self.anomaly is None else self.anomaly.to_dict(),
        }


def markdown_table(report: EvaluationReport) -> str:
    """The report as Markdown: a warning for random weights, a summary and a per-class table."""
    lines = ["# Segmentation evaluation", ""]
    lines += random_weights_warning(report.checkpoint)
    if report.frames == 0:
        lines += ["> No frame had a label: accuracy was not measured.", ""]
    latency = report.latency_stats()
    rows = [
        ("source", report.source or "-"),
        ("model", report.model or "-"),
        ("checkpoint", checkpoint_text(report.checkpoint)),
        *([("class map", report.class_map)] if report.class_map else []),
        ("frames scored", str(report.frames)),
        ("pixels scored", str(report.confusion.pixels)),
        ("processes", str(report.processes)),
    ]
    if report.dropped_frames is not None:
        rows.append(("frames dropped", str(report.dropped_frames)))
    rows += [
        ("mIoU (%)", percent(report.confusion.miou())),
        ("pixel accuracy (%)", percent(report.confusion.pixel_accuracy())),
        ("ECE (%)", percent(report.ece)),
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
        ECE_NOTE,
        "",
    ]
    if report.anomaly is not None:
        lines += ["## Anomaly detection", "", *anomaly_header(report.anomaly), ""]
        lines += [*report.anomaly.markdown_rows(), "", ANOMALY_NOTE, ""]
    return "\n".join(lines)


ECE_NOTE = (
    "ECE: expected calibration error of the winning-class probability over 15 equal-width "
    "bins, on the labelled pixels (correct = predicted class equals the label)."
)
ANOMALY_NOTE = (
    "Every non-void pixel of the anomaly truth is one sample (anomaly = positive), ranked by "
    "its anomaly score; AP = average precision; FPR at the first threshold with TPR >= 95 %."
)


def anomaly_header(report: AnomalyReport) -> list[str]:
    """Markdown lines: frames, pixels and anomaly pixels the metrics were computed on."""
    chosen = report.chosen
    sampled = (
        f" (metrics on a uniform sample of {chosen.sampled_pixels})"
        if chosen.sampled_pixels < chosen.pixels
        else ""
    )
    return [
        f"frames: {report.frames}; pixels: {chosen.pixels}{sampled}; anomaly pixels: "
        f"{chosen.anomaly_pixels}; score: {report.method} (higher = more anomalous), beside "
        f"{BASELINE_METHOD} (1 - confidence)"
    ]


def anomaly_markdown(report: AnomalyReport) -> str:
    """An anomaly report as Markdown: source, model, the pixels, and the metrics table."""
    lines = ["# Anomaly detection", ""]
    lines += random_weights_warning(report.checkpoint)
    lines += [
        f"source: {report.source or '-'}; model: {report.model or '-'}; checkpoint: "
        f"{checkpoint_text(report.checkpoint)}; processes: {report.processes}",
        "",
        *anomaly_header(report),
        "",
        *report.markdown_rows(),
        "",
        ANOMALY_NOTE,
        "",
    ]
    return "\n".join(lines)


def write_anomaly_report(report: AnomalyReport, out_dir: Path) -> dict[str, Path]:
    """Write report.md and report.json of an anomaly report into ``out_dir`` (created).

    Returns:
        {"markdown", "json"} -> the written paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with staged(out_dir, "report") as stage:
        (stage / "report.md").write_text(anomaly_markdown(report), encoding="utf-8")
        text = json.dumps(report.to_dict(), indent=2) + "\n"
        (stage / "report.json").write_text(text, encoding="utf-8")
    return {"markdown": out_dir / "report.md", "json": out_dir / "report.json"}


def write_report(
    report: EvaluationReport,
    out_dir: Path,
    *,
    markdown: str | None = None,
    data: dict | None = None,
) -> dict[str, Path]:
    """Write report.md, report.json, iou.png and confusion.png into ``out_dir`` (created), and
    reliability.png (the reliability diagram) when the report has a calibration.

    Args:
        markdown, data: report.md's text and report.json's content instead of the report's
            (:func:`markdown_table`, :meth:`EvaluationReport.to_dict`); the charts are the
            report's.

    Returns:
        {"markdown", "json", "iou_chart", "confusion_chart"} (+ "reliability") -> the written
        paths.
    """
    from vltseg_ros.evaluation.calibration import reliability_diagram
    from vltseg_ros.evaluation.plots import confusion_chart, iou_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {
        "markdown": "report.md",
        "json": "report.json",
        "iou_chart": "iou.png",
        "confusion_chart": "confusion.png",
    }
    if report.calibration is not None:
        names["reliability"] = "reliability.png"
    with staged(out_dir, "report") as stage:
        markdown = markdown_table(report) if markdown is None else markdown
        (stage / names["markdown"]).write_text(markdown, encoding="utf-8")
        text = json.dumps(report.to_dict() if data is None else data, indent=2) + "\n"
        (stage / names["json"]).write_text(text, encoding="utf-8")
        title = f"{report.model or 'model'}: mIoU {percent(report.confusion.miou())} %"
        if not report.checkpoint:
            title += f" ({RANDOM_WEIGHTS_NOTE})"
        iou_chart(report.names, report.confusion.iou(), title, stage / names["iou_chart"])
        normalized = report.confusion.row_normalized()
        confusion_chart(report.names, normalized, stage / names["confusion_chart"])
        if report.calibration is not None:
            title = f"{report.model or 'model'}: {report.source or 'reliability'}"
            if not report.checkpoint:
                title += f" ({RANDOM_WEIGHTS_NOTE})"
            reliability_diagram(report.calibration, stage / names["reliability"], title)
    return {key: out_dir / name for key, name in names.items()}


def _provenance(report: AnomalyReport | EvaluationReport) -> dict:
    """The keys every report starts with: model, checkpoint, random_weights, source, frames,
    processes."""
    return {
        "model": report.model,
        "checkpoint": report.checkpoint,
        "random_weights": not report.checkpoint,
        "source": report.source,
        "frames": report.frames,
        "processes": report.processes,
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def percent(value: float) -> str:
    """A fraction in [0, 1] as a percentage with 2 decimals ("n/a" for NaN)."""
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"


def _role(name: str, method: str) -> str:
    return " (chosen)" if name == method else " (baseline)" if name == BASELINE_METHOD else ""


def _number(value: float | int | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
