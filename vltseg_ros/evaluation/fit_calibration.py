"""Fit a checkpoint's calibration on labelled held-out frames (``vltseg calibrate``).

Two passes over the frames:

1. untempered (temperature 1): per frame, the expected calibration error over every labelled
   pixel, and a seeded random sample of at most ``pixels_per_frame`` labelled pixels' class
   log-probabilities; the temperature minimizes their negative log-likelihood
   (:func:`fit_temperature`);
2. at that temperature: the ECE again, and each frame's mean confidence and anomaly fraction
   exactly as the node computes them (the Segmenter's summary), whose mean and standard
   deviation across frames become the domain-shift reference
   (:mod:`vltseg_ros.inference.domain_shift`).

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

from vltseg_ros.config.model_config import Calibration
from vltseg_ros.errors import EvaluationError
from vltseg_ros.evaluation.calibration import (
    CalibrationAccumulator,
    CalibrationResult,
    fit_temperature,
)
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.scores import AnomalyMethod

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
    anomaly_threshold: float = -0.5,
    pixels_per_frame: int = 20_000,
    seed: int = 0,
    progress: bool = True,
) -> CalibrationFit:
    """Fit the temperature and measure the reference statistics (module docstring).

    ``segmenter.temperature`` is left at the fitted value.

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
    confidences, fractions = [], []
    options = {
        "summarize": True,
        "anomaly_method": anomaly_method,
        "anomaly_threshold": anomaly_threshold,
    }
    for labels, result in _predict(segmenter, frames, "tempered", progress, **options):
        valid = labels != segmenter.class_set.ignore_index
        after.add(result.confidence, result.labels == labels, valid)
        confidences.append(result.summary.mean_confidence)
        fractions.append(result.summary.anomaly_fraction)
    before_result, after_result = before.result(), after.result()
    calibration = Calibration(
        temperature=temperature,
        mean_confidence=float(np.mean(confidences)),
        mean_confidence_std=float(np.std(confidences)),
        anomaly_fraction=float(np.mean(fractions)),
        anomaly_fraction_std=float(np.std(fractions)),
        anomaly_method=anomaly_method,
        anomaly_threshold=anomaly_threshold,
        ece_before=before_result.ece,
        ece_after=after_result.ece,
        frames=len(confidences),
        source=source,
    )
    calibration.validate()
    return CalibrationFit(calibration, before_result, after_result)


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
