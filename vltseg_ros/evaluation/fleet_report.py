"""The report of a run over several bags (``vltseg bag-eval`` with several bags or a folder of
bags): one section per bag and the total, whose confusion matrix is the sum of the bags'."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vltseg_ros.evaluation.report import (
    EvaluationReport,
    checkpoint_text,
    markdown_table,
    percent,
    random_weights_warning,
    write_report,
)


def fleet_dict(bags: Mapping[str, EvaluationReport], total: EvaluationReport) -> dict[str, Any]:
    """JSON-ready: ``processes`` (how many shared the work), ``bags`` (bag name ->
    :meth:`EvaluationReport.to_dict` plus ``report``, its report.json path relative to the
    report folder) and ``total`` (the total's :meth:`EvaluationReport.to_dict`)."""
    return {
        "processes": total.processes,
        "bags": {
            name: {**report.to_dict(), "report": f"{name}/report.json"}
            for name, report in bags.items()
        },
        "total": total.to_dict(),
    }


def fleet_markdown(
    bags: Mapping[str, EvaluationReport], total: EvaluationReport, *, sections: bool = True
) -> str:
    """Markdown: a table of the bags and the total (frames, pixels, mIoU, pixel accuracy, ECE,
    latency p50, in percent / ms), then (with ``sections``) the total's section and one
    section per bag (each :func:`markdown_table` under its own heading)."""
    lines = [f"# Evaluation of {len(bags)} bags", ""]
    lines += random_weights_warning(total.checkpoint)
    lines += [
        f"model: {total.model or '-'}; checkpoint: {checkpoint_text(total.checkpoint)}"
        f"; processes: {total.processes}",
        "",
        "| bag | frames | pixels | mIoU (%) | pixel accuracy (%) | ECE (%) | latency p50 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [*bags.items(), ("**total**", total)]
    for name, report in rows:
        p50 = report.latency_stats()["p50"]
        lines.append(
            f"| {name} | {report.frames} | {report.confusion.pixels} | "
            f"{percent(report.confusion.miou())} | {percent(report.confusion.pixel_accuracy())} "
            f"| {percent(report.ece)} | {'n/a' if p50 is None else f'{p50:.1f}'} |"
        )
    lines += ["", "The total pools the pixels of every bag (its confusion matrix is the sum).", ""]
    if sections:
        lines += _section(f"Total ({len(bags)} bags)", total)
        for name, report in bags.items():
            lines += _section(f"Bag {name}", report)
    return "\n".join(lines)


def _section(title: str, report: EvaluationReport) -> list[str]:
    """``markdown_table(report)`` under ``## title``, its own headings one level down."""
    body = markdown_table(report).split("\n")[1:]  # without its "# ..." title
    return [f"## {title}", *(f"#{line}" if line.startswith("## ") else line for line in body)]


def write_fleet_report(
    bags: Mapping[str, EvaluationReport], total: EvaluationReport, out_dir: Path
) -> dict[str, Path]:
    """Write each bag's report into ``out_dir/<bag name>`` (:func:`write_report`), and the
    fleet's report.md (:func:`fleet_markdown`), report.json (:func:`fleet_dict`) and the
    total's charts (iou.png, confusion.png, reliability.png) into ``out_dir``.

    Returns:
        The files written into ``out_dir`` by name (as :func:`write_report`'s).
    """
    out_dir = Path(out_dir)
    for name, report in bags.items():
        write_report(report, out_dir / name)
    return write_report(
        total, out_dir, markdown=fleet_markdown(bags, total), data=fleet_dict(bags, total)
    )
