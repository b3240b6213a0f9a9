"""Evaluation of a segmenter on labeled data sets, per domain, as the reference evaluates.

Each frame is segmented with the segmenter's inference settings (sliding window for VLTSeg
checkpoints), its class scores are resized to the label file's resolution before the argmax, and
the labels are scored with :class:`ConfusionMatrix` (cityscapesscripts' conventions) and the
winning-class probability with :class:`CalibrationAccumulator` (ECE, 15 bins; pixels with a
label, correct = predicted class equals the label). Frames are grouped by their ``domain``
(``"cityscapes"``, ``"acdc/fog"``, ...); a domain with a ``/`` also counts towards its group
(``"acdc"``: the sum of the ACDC conditions evaluated). With a class map, predictions are made
in its output classes and the labels mapped with its lookup table, so the matrices, IoU and
mIoU are over the output classes.

:func:`score_dataset` gives the confusion matrices and calibration statistics
(:func:`evaluate_dataset`: the matrices only); :func:`domain_reports` turns them into one
:class:`EvaluationReport` per domain (anomaly data sets:
:mod:`vltseg_ros.evaluation.anomaly_eval`); :mod:`vltseg_ros.evaluation.summary_report` puts all
domains and anomaly sets side by side.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from vltseg_ros.config.class_map import BoundClassMap
from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.errors import ConfigError, DatasetError
from vltseg_ros.evaluation.calibration import CalibrationAccumulator, CalibrationResult
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import (
    EvaluationReport,
    percent,
)
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import SegmentationResult

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetScores:
    """What :func:`score_dataset` measured, per domain (sorted, group entries included).

    Attributes:
        matrices: domain -> confusion matrix.
        calibration: domain -> calibration statistics of the winning-class probability.
    """

    matrices: dict[str, ConfusionMatrix]
    calibration: dict[str, CalibrationAccumulator]

    def calibration_results(self) -> dict[str, CalibrationResult | None]:
        """domain -> ECE and reliability bins (None for a domain without a labelled pixel)."""
        return {domain: calibration_result(acc) for domain, acc in self.calibration.items()}


def calibration_result(accumulator: CalibrationAccumulator) -> CalibrationResult | None:
    """The accumulator's result, or None when no pixel was added."""
    return accumulator.result() if int(accumulator.counts.sum()) else None


def add_calibration(
    accumulator: CalibrationAccumulator,
    result: SegmentationResult,
    labels: np.ndarray,
    ignore_index: int,
) -> None:
    """Add one frame's (H, W) float32 ``result.confidence`` on its pixels with a label:
    ``labels`` (H, W) uint8 train ids, ``ignore_index`` = no label; correct = ``result.labels``
    equals ``labels``."""
    valid = labels != ignore_index
    accumulator.add(result.confidence, result.labels == labels, valid)


def evaluate_dataset(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    *,
    progress: bool = True,
    limit: int | None = None,
) -> dict[str, ConfusionMatrix]:
    """Segment the data set's frames and score them per domain: :func:`score_dataset`'s
    confusion matrices (same arguments, returns and errors)."""
    return score_dataset(segmenter, dataset, progress=progress, limit=limit).matrices


def score_dataset(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    *,
    progress: bool = True,
    limit: int | None = None,
    class_map: BoundClassMap | None = None,
    log: bool = True,
) -> DatasetScores:
    """Segment the data set's frames and score them per domain (as many frames per engine
    call as fill the segmenter's ``batch_size`` network inputs).

    Args:
        segmenter: the model with its inference settings (mode, crop, stride, test scale).
        dataset: a data set built without a transform (items: (H, W, 3) uint8 RGB ``image``,
            (H, W) uint8 train-id ``labels`` with 255 = ignore, ``domain``).
        progress: show a tqdm progress bar.
        limit: evaluate only the first ``limit`` frames of each domain (quick checks).
        class_map: score in its output classes (bound to the segmenter's classes): labels
            mapped with its lookup table (255 stays 255, unmapped classes go to its default
            or 255), predictions made with it (merged confidence).
        log: log each domain's mIoU, pixel accuracy and ECE (:func:`log_scores`).

    Returns:
        Per domain the confusion matrix (``segmenter.class_set`` classes, or the class map's
        output classes) and the calibration
        statistics of ``result.confidence`` (tempered by the checkpoint's calibration, if any),
        sorted by domain, with one group entry per domain prefix (``"acdc"`` = sum of the
        ``"acdc/<condition>"`` entries). Predictions are compared at the label file's
        resolution.

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
    class_set = segmenter.class_set if class_map is None else class_map.classes
    matrices: dict[str, ConfusionMatrix] = {}
    calibration: dict[str, CalibrationAccumulator] = {}
    items = (dataset[index] for index in indices)
    stream = ((item, item["image"], "rgb", item["labels"].shape) for item in items)
    options = {} if class_map is None else {"class_map": class_map}
    with tqdm(total=len(indices), unit="frame", desc=dataset.name, disable=not progress) as bar:
        for batch, results, _ in segmenter.predict_stream(stream, **options):
            for item, result in zip(batch, results, strict=True):
                domain = item["domain"]
                matrix = matrices.setdefault(
                    domain, ConfusionMatrix(class_set.num_classes, class_set.ignore_index)
                )
                try:
                    labels = item["labels"]
                    labels = labels if class_map is None else class_map.map_labels(labels)
                    matrix.update(result.labels, labels)
                except ValueError as exc:
                    raise DatasetError(f"{dataset.name} frame {item['name']}: {exc}") from exc
                accumulator = calibration.setdefault(domain, CalibrationAccumulator())
                add_calibration(accumulator, result, labels, class_set.ignore_index)
            bar.update(len(batch))
    scores = DatasetScores(with_groups(matrices), with_groups(calibration))
    if log:
        log_scores(scores)
    return scores


def log_scores(scores: DatasetScores) -> None:
    """One log line per domain: mIoU, pixel accuracy and ECE in percent."""
    for domain, matrix in scores.matrices.items():
        LOG.info(
            "%s: mIoU %s %%, pixel accuracy %s %%, ECE %s %%",
            domain,
            percent(matrix.miou()),
            percent(matrix.pixel_accuracy()),
            percent(_ece(calibration_result(scores.calibration[domain]))),
        )


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
    (the sum of its members: :class:`ConfusionMatrix` and :class:`CalibrationAccumulator`
    merged, numbers added), sorted."""
    out = dict(per_domain)
    for domain, value in per_domain.items():
        group, slash, _ = domain.partition("/")
        if not slash or group in per_domain:
            continue
        if group not in out:
            out[group] = _copy(value)
        elif isinstance(value, (ConfusionMatrix, CalibrationAccumulator)):
            out[group].merge(value)
        else:
            out[group] += value
    return {domain: out[domain] for domain in sorted(out)}


def _copy(value: Any) -> Any:
    if isinstance(value, ConfusionMatrix):
        matrix = ConfusionMatrix(value.num_classes, value.ignore_index)
        matrix.merge(value)
        return matrix
    if isinstance(value, CalibrationAccumulator):
        accumulator = CalibrationAccumulator(value.bins)
        accumulator.merge(value)
        return accumulator
    return value


def _ece(result: CalibrationResult | None) -> float:
    return float("nan") if result is None else result.ece


def domain_reports(
    matrices: Mapping[str, ConfusionMatrix],
    frames: Mapping[str, int],
    class_names: Sequence[str],
    *,
    model: str = "",
    checkpoint: str = "",
    source: str = "",
    calibration: Mapping[str, CalibrationResult | None] | None = None,
    class_map: str = "",
    processes: int = 1,
) -> dict[str, EvaluationReport]:
    """One report per domain of :func:`score_dataset`'s matrices.

    Args:
        matrices: domain -> confusion matrix.
        frames: domain -> frames scored (:func:`frame_counts`).
        class_names: name per train id.
        model, checkpoint: as in :class:`EvaluationReport` (checkpoint "" = random weights).
        source: where the frames came from (e.g. ``acdc:/data/acdc, val split``); each
            report's source is ``"<domain> (<source>)"``.
        calibration: domain -> ECE and reliability bins
            (:meth:`DatasetScores.calibration_results`); a domain absent or None has none.
        class_map: the class map the matrices are over (:meth:`BoundClassMap.describe`; ""
            = the model's classes).
        processes: how many processes shared the frames (recorded).
    """
    calibration = calibration or {}
    return {
        domain: EvaluationReport(
            tuple(class_names),
            matrix,
            frames=int(frames.get(domain, 0)),
            source=f"{domain} ({source})" if source else domain,
            model=model,
            checkpoint=checkpoint,
            calibration=calibration.get(domain),
            class_map=class_map,
            processes=processes,
        )
        for domain, matrix in matrices.items()
    }
