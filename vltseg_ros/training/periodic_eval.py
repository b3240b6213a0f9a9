"""Evaluation on the run's target domains during training, shared by all processes.

Each process segments its share of every target's frames (every ``world_size``-th frame) with
the model's inference settings (sliding window, test scale) through
:func:`vltseg_ros.evaluation.sharding.score_share`; the confusion matrices are summed on rank 0
(:func:`~vltseg_ros.evaluation.sharding.gather_scores`), which returns one record per domain.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from vltseg_ros.data.dataset import SegmentationDataset
from vltseg_ros.engines.torch_engine import TorchEngine
from vltseg_ros.evaluation.sharding import gather_scores, score_share
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model.segmentor import VLTSeg
from vltseg_ros.parallel.distributed import DistributedContext
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
    names = model.config.class_set.names
    records = []
    for spec, dataset in targets:
        local = score_share(segmenter, dataset, context, limit=run.eval.limit, progress=progress)
        scores = gather_scores(local)
        if scores is None:
            continue
        for domain, matrix in scores.matrices.items():
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
