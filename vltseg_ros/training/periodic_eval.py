"""Evaluation on the run's target domains during training, shared by all processes.

Each process segments its share of every target's frames (every ``world_size``-th frame) with
the model's inference settings (sliding window, test scale) through
:func:`vltseg_ros.evaluation.dataset_eval.evaluate_dataset`; the confusion matrices are summed
on rank 0, which returns one record per domain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.engines.torch_engine import TorchEngine
from vltseg_ros.evaluation.dataset_eval import evaluate_dataset, selected_indices
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.segmentor import VLTSeg
from vltseg_ros.training.distributed import DistributedContext, gather_objects
from vltseg_ros.training.run_config import RunConfig

LOG = logging.getLogger(__name__)


def evaluate_targets(
    model: VLTSeg,
    targets: Sequence[tuple[str, SegmentationDataset]],
    run: RunConfig,
    context: DistributedContext,
    iteration: int,
    *,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Score ``model`` on every target data set (all processes must call this together).

    The model is left in eval mode; the caller puts it back into training mode.

    Args:
        model: the unwrapped network on ``context.device``.
        targets: (``NAME:ROOT`` spec, data set without transform) pairs.
        run: the run config (``eval.limit``, ``eval.batch_size``, ``eval.precision``).
        context: this process's rank and device.
        iteration: iterations trained so far (recorded).
        progress: show a progress bar on rank 0.

    Returns:
        On rank 0, one record per domain (and domain group) of every target: ``iteration``,
        ``target``, ``split``, ``domain``, ``frames``, ``miou``, ``pixel_accuracy`` (in [0, 1],
        NaN when nothing was scored) and ``iou`` (class name -> IoU); [] on other ranks.
    """
    precision = run.eval.precision if context.device.type == "cuda" else "fp32"
    segmenter = Segmenter(
        TorchEngine(model, context.device, precision), batch_size=run.eval.batch_size
    )
    class_set = model.config.class_set
    names = class_set.names
    records = []
    for spec, dataset in targets:
        indices = selected_indices(dataset, run.eval.limit)
        mine = indices[context.rank :: context.world_size]
        local: dict[str, ConfusionMatrix] = {}
        if mine:
            shard = SegmentationDataset([dataset.samples[i] for i in mine], name=dataset.name)
            local = evaluate_dataset(segmenter, shard, progress=progress and context.is_main)
        gathered = gather_objects({domain: m.matrix for domain, m in local.items()})
        if not context.is_main:
            continue
        for domain, matrix in _merge(gathered, len(names), class_set.ignore_index).items():
            iou = matrix.iou()
            records.append(
                {
                    "iteration": iteration,
                    "target": spec,
                    "split": run.data.target_split,
                    "domain": domain,
                    "pixels": matrix.pixels,
                    "miou": matrix.miou(),
                    "pixel_accuracy": matrix.pixel_accuracy(),
                    "iou": {name: float(v) for name, v in zip(names, iou, strict=True)},
                }
            )
            LOG.info("iteration %d, %s: mIoU %.2f %%", iteration, domain, 100.0 * matrix.miou())
    return records


def _merge(
    per_rank: Sequence[dict[str, np.ndarray]], num_classes: int, ignore_index: int
) -> dict[str, ConfusionMatrix]:
    """Sum the (C, C + 1) count matrices of every rank per domain, sorted by domain."""
    merged: dict[str, ConfusionMatrix] = {}
    for matrices in per_rank:
        for domain, counts in matrices.items():
            matrix = merged.setdefault(domain, ConfusionMatrix(num_classes, ignore_index))
            matrix.matrix += counts
    return dict(sorted(merged.items()))
