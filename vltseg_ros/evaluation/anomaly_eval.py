"""Anomaly detection scored against anomaly truth: the chosen anomaly score and max
probability (the field's baseline, ``1 - confidence``) from one forward pass, per pixel, with
:class:`AnomalyAccumulator` (AUROC, AP, FPR at 95 % TPR, as sklearn computes them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from vltseg_ros.config.anomaly_methods import check_method
from vltseg_ros.data.anomaly_sets import AnomalySample, load_anomaly_sample
from vltseg_ros.errors import ConfigError, EvaluationError
from vltseg_ros.evaluation.anomaly import AnomalyAccumulator
from vltseg_ros.evaluation.report import BASELINE_METHOD, AnomalyReport, percent
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import SegmentationResult

LOG = logging.getLogger(__name__)


class AnomalyScoring:
    """Pools one run's per-pixel anomaly scores against anomaly truth, for the chosen score
    and for :data:`BASELINE_METHOD` (``1 - result.confidence``, from the same forward pass).

    Args:
        method: the anomaly score of the results (the ``anomaly_method`` they were predicted
            with, ``return_anomaly`` set: :meth:`predict_options`).
        seed: seed of the pixel sampling over the cap (:class:`AnomalyAccumulator`); the
            processes sharing one run's frames each take their rank.

    Raises:
        ConfigError: an unknown method.
    """

    def __init__(self, method: str, seed: int = 0) -> None:
        self.method = check_method(method)
        names = dict.fromkeys((self.method, BASELINE_METHOD))
        # one seed for all: over the sampling cap they keep the same pixels
        self.accumulators = {name: AnomalyAccumulator(seed=seed) for name in names}
        self.frames = 0
        """Frames added."""

    def predict_options(self) -> dict[str, Any]:
        """The :meth:`Segmenter.predict_frames` options the added results need."""
        return {"anomaly_method": self.method, "return_anomaly": True}

    def add(self, result: SegmentationResult, truth: np.ndarray) -> None:
        """Add one frame: its result (with ``anomaly``) and (H, W) uint8 truth of the same
        size (0 in-distribution, 1 anomaly, other values void).

        Raises:
            EvaluationError: the result has no anomaly map, or the sizes differ.
        """
        if result.anomaly is None:
            raise EvaluationError("the result has no anomaly map: predict with return_anomaly")
        scores = {self.method: result.anomaly, BASELINE_METHOD: 1.0 - result.confidence}
        for name, accumulator in self.accumulators.items():
            accumulator.add(scores[name], truth)
        self.frames += 1

    def merge(self, other: AnomalyScoring) -> None:
        """Add ``other``'s frames (another process's share, another bag; the same method):
        :meth:`AnomalyAccumulator.merge` says when the result is exact.

        Raises:
            ConfigError: ``other`` scores another method.
        """
        if other.method != self.method:
            raise ConfigError(f"cannot merge {other.method} scores into {self.method} scores")
        for name, accumulator in self.accumulators.items():
            accumulator.merge(other.accumulators[name])
        self.frames += other.frames

    def report(
        self, *, source: str = "", model: str = "", checkpoint: str = "", processes: int = 1
    ) -> AnomalyReport:
        """The metrics of every score (``processes``: how many shared the frames, recorded).

        Raises:
            EvaluationError: no anomaly pixel or no in-distribution pixel was added.
        """
        metrics = {name: acc.result() for name, acc in self.accumulators.items()}
        return AnomalyReport(
            self.method, metrics, self.frames, source, model, checkpoint, processes
        )


def evaluate_anomaly_set(
    segmenter: Segmenter,
    samples: Sequence[AnomalySample],
    method: str = "rba",
    *,
    source: str = "",
    checkpoint: str = "",
    progress: bool = True,
) -> AnomalyReport:
    """Segment every sample of an anomaly data set and score its anomaly map at the label's
    resolution (the segmenter's inference settings; class scores resized before the scores
    are computed).

    Args:
        segmenter: the model with its inference settings.
        samples: from :func:`vltseg_ros.data.anomaly_sets.anomaly_samples` (e.g. the first N).
        method: the anomaly score (:data:`vltseg_ros.inference.scores.ANOMALY_METHODS`),
            reported beside max probability.
        source: where the samples came from (``road_anomaly:/data/RoadAnomaly_jpg``).
        checkpoint: the weights file ("" = random weights), for the report.
        progress: show a tqdm progress bar.

    Raises:
        ConfigError: an unknown method.
        DatasetError: a file is unreadable, or a label's size differs from its image.
        EvaluationError: the truth holds no anomaly or no in-distribution pixel.
    """
    scoring = score_anomaly_set(segmenter, samples, method, progress=progress)
    report = scoring.report(source=source, model=segmenter.config.name, checkpoint=checkpoint)
    log_anomaly(report)
    return report


def score_anomaly_set(
    segmenter: Segmenter,
    samples: Sequence[AnomalySample],
    method: str = "rba",
    *,
    progress: bool = True,
    seed: int = 0,
) -> AnomalyScoring:
    """Segment the samples and pool their scores (:func:`evaluate_anomaly_set` without the
    report: a process's share, merged with the others' by :meth:`AnomalyScoring.merge`).

    Args:
        seed: :class:`AnomalyScoring`'s sampling seed.

    Raises:
        ConfigError: an unknown method.
        DatasetError: a file is unreadable, or a label's size differs from its image.
    """
    scoring = AnomalyScoring(method, seed)
    loaded = map(load_anomaly_sample, samples)
    stream = ((truth, image, "rgb", truth.shape) for image, truth in loaded)
    name = samples[0].dataset if samples else "anomaly"
    with tqdm(total=len(samples), unit="frame", desc=name, disable=not progress) as bar:
        for truths, results, _ in segmenter.predict_stream(stream, **scoring.predict_options()):
            for truth, result in zip(truths, results, strict=True):
                scoring.add(result, truth)
            bar.update(len(truths))
    return scoring


def log_anomaly(report: AnomalyReport) -> None:
    """One log line: the chosen score's AUROC, AP and FPR95 in percent."""
    LOG.info(
        "%s: %s AUROC %s %%, AP %s %%, FPR95 %s %%",
        report.source or "anomaly",
        report.method,
        percent(report.chosen.auroc),
        percent(report.chosen.average_precision),
        percent(report.chosen.fpr_at_95_tpr),
    )
