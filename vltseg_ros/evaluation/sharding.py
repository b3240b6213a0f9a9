"""Evaluation shared by the processes of a torchrun launch: each segments its share of the
frames, and rank 0 adds up what they counted.

Shares: every ``world_size``-th frame from the process's rank, of the frames the evaluation
takes (:func:`~vltseg_ros.evaluation.dataset_eval.selected_indices`: all, or ``limit`` per
domain). What is added up, and how exactly:

- confusion matrices: int64 pixel counts, summed, so the matrix, IoU and mIoU equal one
  process's bit for bit;
- calibration bins (:class:`CalibrationAccumulator`): pixel and correct counts are int64
  sums (exact); the per-bin confidence sums are float64 sums, added in another order than one
  process adds them, so the ECE can differ from one process's in its last bits (~1e-16);
- anomaly scores (:class:`AnomalyScoring`): the pooled pixels of every share, so AUROC, AP and
  FPR95 equal one process's bit for bit while all pixels fit the pooling cap (10 million by
  default); beyond it they come from a uniform sample of all pixels (each share keeps its
  own, seeded with its rank), as one process's do, but not the same sample.
"""

from __future__ import annotations

from collections.abc import Iterable

from vltseg_ros.config.class_map import BoundClassMap
from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.calibration import CalibrationAccumulator
from vltseg_ros.evaluation.dataset_eval import DatasetScores, score_dataset, selected_indices
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.parallel.distributed import DistributedContext, gather_to_main, shard


def score_share(
    segmenter: Segmenter,
    dataset: SegmentationDataset,
    context: DistributedContext,
    *,
    limit: int | None = None,
    class_map: BoundClassMap | None = None,
    progress: bool = True,
) -> DatasetScores | None:
    """Score this process's share of the data set's frames (:func:`score_dataset`: the same
    data set, ``limit`` and ``class_map`` rules and errors; a progress bar on rank 0 only, the
    per-domain log lines only in a single process).

    Returns:
        The share's scores, or None when the share is empty (fewer frames than processes).
    """
    mine = shard(selected_indices(dataset, limit), context)
    if not mine:
        return None
    part = SegmentationDataset([dataset.samples[i] for i in mine], name=dataset.name)
    return score_dataset(
        segmenter,
        part,
        progress=progress and context.is_main,
        class_map=class_map,
        log=not context.is_distributed,
    )


def gather_scores(local: DatasetScores | None) -> DatasetScores | None:
    """Every process's scores added up on rank 0 (every process must call it); None on the
    other ranks. In a single process: ``local`` (an empty one for None)."""
    gathered = gather_to_main(local)
    return None if gathered is None else merge_scores(gathered)


def merge_scores(parts: Iterable[DatasetScores | None]) -> DatasetScores:
    """The sum of ``parts`` per domain (None parts skipped), sorted by domain; the parts are
    left as they were."""
    matrices: dict[str, ConfusionMatrix] = {}
    calibration: dict[str, CalibrationAccumulator] = {}
    for part in parts:
        if part is None:
            continue
        for domain, matrix in part.matrices.items():
            total = matrices.setdefault(
                domain, ConfusionMatrix(matrix.num_classes, matrix.ignore_index)
            )
            total.merge(matrix)
        for domain, accumulator in part.calibration.items():
            calibration.setdefault(domain, CalibrationAccumulator(accumulator.bins)).merge(
                accumulator
            )
    return DatasetScores(
        {d: matrices[d] for d in sorted(matrices)},
        {d: calibration[d] for d in sorted(calibration)},
    )


def gather_anomaly(local: AnomalyScoring) -> AnomalyScoring | None:
    """Every process's pooled anomaly scores merged on rank 0, in rank order (every process
    must call it); None on the other ranks; ``local`` itself in a single process."""
    gathered = gather_to_main(local)
    if gathered is None:
        return None
    merged, *others = gathered
    for other in others:
        merged.merge(other)
    return merged
