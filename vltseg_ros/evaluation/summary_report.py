"""All domains and anomaly sets of one evaluation side by side (``vltseg evaluate``'s
``summary.md`` / ``summary.json``) and every report written: :func:`summary_dict`,
:func:`summary_markdown`, :func:`write_evaluation` (the per-domain reports come from
:func:`vltseg_ros.evaluation.dataset_eval.domain_reports`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vltseg_ros.evaluation.report import (
    ANOMALY_KEYS,
    ANOMALY_NAMES,
    ANOMALY_NOTE,
    AnomalyReport,
    EvaluationReport,
    checkpoint_text,
    percent,
    random_weights_warning,
    write_anomaly_report,
    write_report,
)
from vltseg_ros.io.files import staged


def summary_dict(
    reports: Mapping[str, EvaluationReport], anomaly: Mapping[str, AnomalyReport] | None = None
) -> dict[str, Any]:
    """All domains and anomaly sets side by side, JSON-ready (NaN -> None, values in [0, 1]).

    Keys: model, checkpoint, random_weights, processes (how many shared the work), class_map
    (None: the model's classes), classes,
    domains (domain -> source, frames,
    pixels, miou, pixel_accuracy, iou (class -> IoU), ece, report: its report.json path
    relative to the evaluation folder), anomaly (set -> source, frames, pixels,
    anomaly_pixels, method, auroc, average_precision, fpr_at_95_tpr of the method, metrics
    (score -> the three and the pixel counts; the method's and max_probability's), report).
    """
    anomaly = anomaly or {}
    first = _first(reports, anomaly)
    domains = {}
    for domain, report in reports.items():
        data = report.to_dict()
        keys = ("source", "frames", "pixels", "miou", "pixel_accuracy", "iou", "ece")
        domains[domain] = {key: data[key] for key in keys}
        domains[domain]["report"] = f"{domain}/report.json"
    anomaly_sets = {}
    for name, report in anomaly.items():
        data = report.to_dict()
        keys = ("source", "frames", "pixels", "anomaly_pixels", "method", *ANOMALY_KEYS)
        anomaly_sets[name] = {key: data[key] for key in (*keys, "metrics")}
        anomaly_sets[name]["report"] = f"anomaly/{name}/report.json"
    return {
        "model": first.model if first else "",
        "checkpoint": first.checkpoint if first else "",
        "random_weights": not first.checkpoint if first else True,
        "processes": first.processes if first else 1,
        "class_map": _class_map(reports) or None,
        "classes": list(next(iter(reports.values())).names) if reports else [],
        "domains": domains,
        "anomaly": anomaly_sets,
    }


def summary_markdown(
    reports: Mapping[str, EvaluationReport], anomaly: Mapping[str, AnomalyReport] | None = None
) -> str:
    """Markdown: a domain table (frames, pixels, mIoU, pixel accuracy, ECE), a class x domain
    IoU table and an anomaly-set table (AUROC, AP, FPR95 of the chosen score and of max
    probability), in percent; a warning first when the weights are random."""
    anomaly = anomaly or {}
    first = _first(reports, anomaly)
    lines = ["# Evaluation summary", ""]
    if first is None:
        return "\n".join([*lines, "No domain was evaluated.", ""])
    lines += random_weights_warning(first.checkpoint)
    mapped = f"; class map: {_class_map(reports)}" if _class_map(reports) else ""
    lines += [
        f"model: {first.model or '-'}; checkpoint: {checkpoint_text(first.checkpoint)}"
        + mapped
        + f"; processes: {first.processes}",
        "",
    ]
    if reports:
        lines += _domain_tables(reports)
    if anomaly:
        lines += _anomaly_table(anomaly)
    return "\n".join(lines)


def _domain_tables(reports: Mapping[str, EvaluationReport]) -> list[str]:
    lines = [
        "| domain | frames | pixels | mIoU (%) | pixel accuracy (%) | ECE (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for domain, report in reports.items():
        matrix = report.confusion
        lines.append(
            f"| {domain} | {report.frames} | {matrix.pixels} | {percent(matrix.miou())} | "
            f"{percent(matrix.pixel_accuracy())} | {percent(report.ece)} |"
        )
    domains = list(reports)
    lines += [
        "",
        "## IoU per class (%)",
        "",
        f"| class | {' | '.join(domains)} |",
        f"|---|{'---:|' * len(domains)}",
    ]
    first = next(iter(reports.values()))
    ious = np.stack([report.confusion.iou() for report in reports.values()], axis=1)
    for name, row in zip(first.names, ious, strict=True):
        lines.append(f"| {name} | {' | '.join(percent(value) for value in row)} |")
    mious = " | ".join(percent(report.confusion.miou()) for report in reports.values())
    return [
        *lines,
        f"| **mIoU** | {mious} |",
        "",
        "IoU is n/a for classes absent from both labels and predictions; mIoU averages the "
        "others (as cityscapesscripts does). A group (e.g. acdc) pools the pixels of its "
        "conditions. ECE: expected calibration error of the winning-class probability (15 "
        "bins) on the labelled pixels.",
        "",
    ]


def _anomaly_table(anomaly: Mapping[str, AnomalyReport]) -> list[str]:
    scores = list(next(iter(anomaly.values())).metrics)
    columns = [f"{score} {name}" for score in scores for name in ANOMALY_NAMES]
    lines = [
        "## Anomaly detection",
        "",
        f"| anomaly set | frames | pixels | anomaly pixels | {' | '.join(columns)} |",
        f"|---|---:|---:|---:|{'---:|' * len(columns)}",
    ]
    for name, report in anomaly.items():
        values = [
            percent(getattr(report.metrics[score], key))
            for score in scores
            for key in ANOMALY_KEYS
        ]
        chosen = report.chosen
        lines.append(
            f"| {name} | {report.frames} | {chosen.pixels} | {chosen.anomaly_pixels} | "
            f"{' | '.join(values)} |"
        )
    return [*lines, "", ANOMALY_NOTE, ""]


def _class_map(reports: Mapping[str, EvaluationReport]) -> str:
    return next(iter(reports.values())).class_map if reports else ""


def _first(
    reports: Mapping[str, EvaluationReport], anomaly: Mapping[str, AnomalyReport]
) -> EvaluationReport | AnomalyReport | None:
    return next(iter(reports.values()), None) or next(iter(anomaly.values()), None)


def write_evaluation(
    reports: Mapping[str, EvaluationReport],
    out_dir: Path,
    anomaly: Mapping[str, AnomalyReport] | None = None,
) -> dict[str, Path]:
    """Write each domain's report.md, report.json, iou.png, confusion.png and reliability.png
    into ``out_dir/<domain>`` (``acdc/fog`` -> ``out_dir/acdc/fog``), each anomaly set's
    report.md and report.json into ``out_dir/anomaly/<set>``, and summary.md and summary.json
    into ``out_dir`` (created).

    Returns:
        {"markdown", "json"} -> the summary files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for domain, report in reports.items():
        write_report(report, out_dir / domain)
    for name, report in (anomaly or {}).items():
        write_anomaly_report(report, out_dir / "anomaly" / name)
    with staged(out_dir, "summary") as stage:
        (stage / "summary.md").write_text(summary_markdown(reports, anomaly), encoding="utf-8")
        text = json.dumps(summary_dict(reports, anomaly), indent=2) + "\n"
        (stage / "summary.json").write_text(text, encoding="utf-8")
    return {"markdown": out_dir / "summary.md", "json": out_dir / "summary.json"}
