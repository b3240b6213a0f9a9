"""Fit a checkpoint's calibration on labelled held-out frames (``vltseg calibrate``).

Two passes over the frames:

1. untempered (temperature 1): per frame, the expected calibration error over every labelled
   pixel, and a seeded random sample of at most ``pixels_per_frame`` labelled pixels' class
   log-probabilities; the temperature minimizes their negative log-likelihood
   (:func:`fit_temperature`);
2. at that temperature: the ECE again, and each frame's mean confidence and anomaly fraction
   (the share of pixels whose anomaly score exceeds the threshold) over its labelled pixels,
   whose mean and standard deviation across frames become the domain-shift reference
   (:mod:`vltseg_ros.inference.domain_shift`). The node, which has no labels, measures every
   pixel; void pixels (things of no class, labelled ignore) are left out of the reference
   because they are the anomalies the score exists to find: counted, they would make the
   calibration set look partly anomalous and every later frame less so by comparison. Beside
   them, the frames' mean predicted-class histogram (the share of all pixels labelled with
   each class, void ones included, as the node counts them), the reference of the shift
   score's class term.

Both ECEs are measured on the frames the temperature was fitted on (in-sample): use frames
the model was not trained on, of its training domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from vltseg_ros.config.anomaly_methods import AnomalyMethod, resolve_threshold
from vltseg_ros.config.model_config import Calibration
from vltseg_ros.errors import EvaluationError
from vltseg_ros.evaluation.calibration import (
    CalibrationAccumulator,
    CalibrationResult,
    fit_temperature,
)
from vltseg_ros.inference.predictor import Segmenter

LOG = logging.getLogger(__name__)
LabelledFrames = Callable[[], Iterable[tuple[np.ndarray, str, np.ndarray]]]
"""A fresh iterable of ``(image (H, W, 3) uint8, color order "rgb" | "bgr", labels (H, W)
uint8 train ids, 255 = ignore)`` per call (the frames are read twice)."""


@dataclass(frozen=True)
class CalibrationFit:
    """What :func:`fit_calibration` found.

    Attributes:
        calibration: the values to store in the checkpoint.
        before, after: ECE bins at temperature 1 and at the fitted temperature.
    """

    calibration: Calibration
    before: CalibrationResult
    after: CalibrationResult


def fit_calibration(
    segmenter: Segmenter,
    frames: LabelledFrames,
    *,
    source: str,
    anomaly_method: AnomalyMethod = "rba",
    anomaly_threshold: float | None = None,
    pixels_per_frame: int = 20_000,
    seed: int = 0,
    progress: bool = True,
) -> CalibrationFit:
    """Fit the temperature and measure the reference statistics (module docstring).

    ``anomaly_threshold`` None: the method's default
    (:data:`~vltseg_ros.config.anomaly_methods.DEFAULT_THRESHOLDS`). The reference counts
    labelled pixels only: void (ignore-labelled) pixels, things of no class, would score as
    anomalous and raise the reference's anomaly fraction. ``segmenter.temperature`` is left at
    the fitted value.

    Raises:
        EvaluationError: no frame, or no labelled pixel.
        DatasetError, BagError, EngineError: reading the frames or running the model.
    """
    rng = np.random.default_rng(seed)
    segmenter.temperature = 1.0
    before = CalibrationAccumulator()
    log_probs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    for labels, result in _predict(segmenter, frames, "untempered", progress, return_scores=True):
        valid = labels != segmenter.class_set.ignore_index
        before.add(result.confidence, result.labels == labels, valid)
        rows, cols = np.nonzero(valid)
        if len(rows) > pixels_per_frame:
            keep = rng.choice(len(rows), pixels_per_frame, replace=False)
            rows, cols = rows[keep], cols[keep]
        scores = torch.from_numpy(result.scores[:, rows, cols].T.copy())
        log_probs.append(scores.clamp_min(1e-12).log())
        targets.append(torch.from_numpy(labels[rows, cols].astype(np.int64)))
    if not log_probs:
        raise EvaluationError("no labelled frame to calibrate on")
    temperature = fit_temperature(torch.cat(log_probs), torch.cat(targets))
    LOG.info("temperature %.4f fitted on %d pixels", temperature, sum(map(len, targets)))

    segmenter.temperature = temperature
    after = CalibrationAccumulator()
    confidences, fractions, histograms = [], [], []
    threshold = resolve_threshold(anomaly_method, anomaly_threshold)
    options = {"anomaly_method": anomaly_method, "return_anomaly": True}
    for labels, result in _predict(segmenter, frames, "tempered", progress, **options):
        valid = labels != segmenter.class_set.ignore_index
        after.add(result.confidence, result.labels == labels, valid)
        if valid.any():
            confidences.append(float(result.confidence[valid].mean()))
            fractions.append(float((result.anomaly[valid] > threshold).mean()))
            histograms.append(_class_shares(result.labels, segmenter.class_set.num_classes))
    if not confidences:
        raise EvaluationError("no frame has a labelled pixel: nothing to calibrate on")
    before_result, after_result = before.result(), after.result()
    calibration = Calibration(
        temperature=temperature,
        mean_confidence=float(np.mean(confidences)),
        mean_confidence_std=float(np.std(confidences)),
        anomaly_fraction=float(np.mean(fractions)),
        anomaly_fraction_std=float(np.std(fractions)),
        anomaly_method=anomaly_method,
        anomaly_threshold=threshold,
        ece_before=before_result.ece,
        ece_after=after_result.ece,
        frames=len(confidences),
        source=source,
        class_fraction=tuple(float(share) for share in np.mean(histograms, axis=0)),
    )
    calibration.validate()
    return CalibrationFit(calibration, before_result, after_result)


def _class_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) float64 share of all of an (H, W) uint8 label map's pixels labelled with each class.

    Over every pixel, void ones too: the node's frames, which it compares with this (the class
    term of the shift score), have no labels to leave any out.
    """
    return np.bincount(labels.ravel(), minlength=256)[:num_classes] / max(labels.size, 1)


def _predict(
    segmenter: Segmenter,
    frames: LabelledFrames,
    what: str,
    progress: bool,
    **options: object,
) -> Iterator[tuple[np.ndarray, object]]:
    """(labels, result) per frame, the results at the labels' resolution."""
    stream = (
        (labels, image, order, labels.shape)
        for image, order, labels in tqdm(frames(), unit="frame", desc=what, disable=not progress)
    )
    for batch, results, _ in segmenter.predict_stream(stream, **options):
        yield from zip(batch, results, strict=True)


def ece_line(fit: CalibrationFit) -> str:
    """``ECE 0.081 -> 0.023 (temperature 1.42, 120 frames)``."""
    c = fit.calibration
    return (
        f"ECE {c.ece_before:.4f} -> {c.ece_after:.4f} (temperature {c.temperature:.4f}, "
        f"{c.frames} frames, {fit.before.pixels} pixels)"
    )
