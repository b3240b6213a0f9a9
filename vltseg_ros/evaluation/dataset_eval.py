"""Evaluation of a segmenter on labeled data sets, per domain, as the reference evaluates.

Each frame is segmented with the segmenter's inference settings (sliding window for VLTSeg
checkpoints), its class scores are resized to the label file's resolution before the argmax, and
the labels are scored with :class:`ConfusionMatrix` (cityscapesscripts' conventions). Frames
are grouped by their ``domain`` (``"cityscapes"``, ``"acdc/fog"``, ...); a domain with a
``/`` also counts towards its group (``"acdc"``: the sum of the ACDC conditions evaluated).

:func:`evaluate_dataset` gives the confusion matrices; :func:`domain_reports` turns them into
one :class:`EvaluationReport` per domain; :func:`summary_markdown`, :func:`summary_dict` and
:func:`write_evaluation` put all domains side by side.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.errors import ConfigError, DatasetError
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import (
    RANDOM_WEIGHTS_NOTE,
    EvaluationReport,
    percent,
    write_report,
)
from vltseg_ros.inference.predictor import Segmenter

LOG = logging.getLogger(__name__)


def evaluate_dataset(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    *,
    progress: bool = True,
    limit: int | None = None,
) -> dict[str, ConfusionMatrix]:
    """Segment the data set's frames and score them per domain (as many frames per engine
    call as fill the segmenter's ``batch_size`` network inputs).

    Args:
        segmenter: the model with its inference settings (mode, crop, stride, test scale).
        dataset: a data set built without a transform (items: (H, W, 3) uint8 RGB ``image``,
            (H, W) uint8 train-id ``labels`` with 255 = ignore, ``domain``).
        progress: show a tqdm progress bar.
        limit: evaluate only the first ``limit`` frames of each domain (quick checks).

    Returns:
        Domain -> confusion matrix (``segmenter.class_set`` classes), sorted by domain, with
        one group entry per domain prefix (``"acdc"`` = sum of the ``"acdc/<condition>"``
        matrices). Predictions are compared at the label file's resolution.

    Raises:
        ConfigError: ``limit`` < 1, or the data set has a transform.
        DatasetError: a file is unreadable, or a label holds ids that are not the model's
            classes.
    """
    if dataset.transform is not None:
        raise ConfigError(
            f"{dataset.name}: evaluate_dataset reads raw frames; build the data set without "
            "a transform"
        )
    indices = selected_indices(dataset, limit)
    class_set = segmenter.class_set
    matrices: dict[str, ConfusionMatrix] = {}
    items = (dataset[index] for index in indices)
    stream = ((item, item["image"], "rgb", item["labels"].shape) for item in items)
    with tqdm(total=len(indices), unit="frame", desc=dataset.name, disable=not progress) as bar:
        for batch, results, _ in segmenter.predict_stream(stream):
            for item, result in zip(batch, results, strict=True):
                matrix = matrices.setdefault(
                    item["domain"], ConfusionMatrix(class_set.num_classes, class_set.ignore_index)
                )
                try:
                    matrix.update(result.labels, item["labels"])
                except ValueError as exc:
                    raise DatasetError(f"{dataset.name} frame {item['name']}: {exc}") from exc
            bar.update(len(batch))
    matrices = with_groups(matrices)
    for domain, matrix in matrices.items():
        LOG.info(
            "%s: mIoU %s %%, pixel accuracy %s %%",
            domain,
            percent(matrix.miou()),
            percent(matrix.pixel_accuracy()),
        )
    return matrices


def selected_indices(dataset: SegmentationDataset, limit: int | None = None) -> list[int]:
    """Indices of the frames evaluated: all, or the first ``limit`` of each domain.

    Raises:
        ConfigError: ``limit`` < 1.
    """
    if limit is None:
        return list(range(len(dataset)))
    if limit < 1:
        raise ConfigError(f"limit must be >= 1 frame per domain, got {limit}")
    taken: Counter[str] = Counter()
    indices = []
    for index, sample in enumerate(dataset.samples):
        if taken[sample.domain] < limit:
            taken[sample.domain] += 1
            indices.append(index)
    return indices


def frame_counts(dataset: SegmentationDataset, limit: int | None = None) -> dict[str, int]:
    """Frames :func:`evaluate_dataset` scores per domain (group entries included)."""
    counts = Counter(dataset.samples[index].domain for index in selected_indices(dataset, limit))
    return with_groups(dict(counts))


def with_groups(per_domain: Mapping[str, Any]) -> dict[str, Any]:
    """``per_domain`` plus a group entry per prefix of the ``"<group>/<member>"`` domains
    (the sum of its members: :class:`ConfusionMatrix` merged, numbers added), sorted."""
    out = dict(per_domain)
    for domain, value in per_domain.items():
        group, slash, _ = domain.partition("/")
        if not slash or group in per_domain:
            continue
        if group not in out:
            out[group] = _copy(value)
        elif isinstance(value, ConfusionMatrix):
            out[group].merge(value)
        else:
            out[group] += value
    return {domain: out[domain] for domain in sorted(out)}


def _copy(value: Any) -> Any:
    if isinstance(value, ConfusionMatrix):
        matrix = ConfusionMatrix(value.num_classes, value.ignore_index)
        matrix.merge(value)
        return matrix
    return value


def domain_reports(
    matrices: Mapping[str, ConfusionMatrix],
    frames: Mapping[str, int],
    class_names: Sequence[str],
    *,
    model: str = "",
    checkpoint: str = "",
    source: str = "",
) -> dict[str, EvaluationReport]:
    """One report per domain of :func:`evaluate_dataset`'s matrices.

    Args:
        matrices: domain -> confusion matrix.
        frames: domain -> frames scored (:func:`frame_counts`).
        class_names: name per train id.
        model, checkpoint: as in :class:`EvaluationReport` (checkpoint "" = random weights).
        source: where the frames came from (e.g. ``acdc:/data/acdc, val split``); each
            report's source is ``"<domain> (<source>)"``.
    """
    return {
        domain: EvaluationReport(
            tuple(class_names),
            matrix,
            frames=int(frames.get(domain, 0)),
            source=f"{domain} ({source})" if source else domain,
            model=model,
            checkpoint=checkpoint,
        )
        for domain, matrix in matrices.items()
    }


def summary_dict(reports: Mapping[str, EvaluationReport]) -> dict[str, Any]:
    """All domains side by side, JSON-ready (NaN -> None, values in [0, 1]).

    Keys: model, checkpoint, random_weights, classes, domains (domain -> source, frames,
    pixels, miou, pixel_accuracy, iou (class -> IoU), report: its report.json path relative
    to the evaluation folder).
    """
    first = next(iter(reports.values()), None)
    domains = {}
    for domain, report in reports.items():
        data = report.to_dict()
        keys = ("source", "frames", "pixels", "miou", "pixel_accuracy", "iou")
        domains[domain] = {key: data[key] for key in keys}
        domains[domain]["report"] = f"{domain}/report.json"
    return {
        "model": first.model if first else "",
        "checkpoint": first.checkpoint if first else "",
        "random_weights": not first.checkpoint if first else True,
        "classes": list(first.names) if first else [],
        "domains": domains,
    }


def summary_markdown(reports: Mapping[str, EvaluationReport]) -> str:
    """Markdown: a domain table (frames, pixels, mIoU, pixel accuracy) and a class x domain
    IoU table, in percent; a warning first when the weights are random."""
    first = next(iter(reports.values()), None)
    lines = ["# Evaluation summary", ""]
    if first is None:
        return "\n".join([*lines, "No domain was evaluated.", ""])
    if not first.checkpoint:
        lines += [f"> **WARNING: no checkpoint, {RANDOM_WEIGHTS_NOTE}.**", ""]
    lines += [
        f"model: {first.model or '-'}; checkpoint: {first.checkpoint or 'none (random weights)'}",
        "",
        "| domain | frames | pixels | mIoU (%) | pixel accuracy (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for domain, report in reports.items():
        matrix = report.confusion
        lines.append(
            f"| {domain} | {report.frames} | {matrix.pixels} | {percent(matrix.miou())} | "
            f"{percent(matrix.pixel_accuracy())} |"
        )
    domains = list(reports)
    lines += [
        "",
        "## IoU per class (%)",
        "",
        f"| class | {' | '.join(domains)} |",
        f"|---|{'---:|' * len(domains)}",
    ]
    ious = np.stack([report.confusion.iou() for report in reports.values()], axis=1)
    for name, row in zip(first.names, ious, strict=True):
        lines.append(f"| {name} | {' | '.join(percent(value) for value in row)} |")
    mious = " | ".join(percent(report.confusion.miou()) for report in reports.values())
    lines += [
        f"| **mIoU** | {mious} |",
        "",
        "IoU is n/a for classes absent from both labels and predictions; mIoU averages the "
        "others (as cityscapesscripts does). A group (e.g. acdc) pools the pixels of its "
        "conditions.",
        "",
    ]
    return "\n".join(lines)


def write_evaluation(reports: Mapping[str, EvaluationReport], out_dir: Path) -> dict[str, Path]:
    """Write each domain's report.md, report.json, iou.png and confusion.png into
    ``out_dir/<domain>`` (``acdc/fog`` -> ``out_dir/acdc/fog``) and summary.md and
    summary.json into ``out_dir`` (created).

    Returns:
        {"markdown", "json"} -> the summary files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for domain, report in reports.items():
        write_report(report, out_dir / domain)
    paths = {"markdown": out_dir / "summary.md", "json": out_dir / "summary.json"}
    paths["markdown"].write_text(summary_markdown(reports), encoding="utf-8")
    text = json.dumps(summary_dict(reports), indent=2) + "\n"
    paths["json"].write_text(text, encoding="utf-8")
    return paths
