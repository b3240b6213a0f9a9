"""One frame's result from the model's raw class scores: normalized scores, confidence,
labels (with a class map: the output classes'), summary and anomaly score, on the host.

Mask2Former's raw semantic scores are non-negative but do not sum to one over classes; here
they are divided by their per-pixel sum (tempered by the calibration temperature), so
``confidence`` is a probability (:mod:`vltseg_ros.inference.predictor`'s docstring says more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vltseg_ros.config.anomaly_methods import AnomalyMethod, resolve_threshold
from vltseg_ros.config.class_map import BoundClassMap
from vltseg_ros.inference.preprocess import resize as _resize
from vltseg_ros.inference.preprocess import resize_nearest
from vltseg_ros.inference.scores import (
    anomaly_score,
    apply_temperature,
    merge_probabilities,
)
from vltseg_ros.inference.summary import ResultSummary
from vltseg_ros.inference.summary import summarize as summarize_result

ResizeMode = Literal["scores", "labels"]


@dataclass(frozen=True)
class SegmentationResult:
    """Per-pixel result for one frame, at the requested output size (H, W).

    Attributes:
        labels: (H, W) uint8 class train ids (with a class map: output ids); ``ignore_index``
            (255) where the confidence is below the threshold (or the class is unmapped).
        confidence: (H, W) float32 in [0, 1], the winning class's normalized score (with a
            class map: the summed probability of its output class's members).
        scores: (C, H, W) float32 per-class scores summing to 1 per pixel (with a class map:
            (K, H, W), the output classes' merged probabilities), or None unless requested.
        summary: per-class pixel shares and mean confidences of ``labels`` (and the share of
            anomalous pixels), or None unless requested (computed on the device before the
            copy to the host).
        anomaly: (H, W) float32 per-pixel anomaly score (higher = more anomalous; range by
            method, see :mod:`vltseg_ros.inference.scores`), or None unless requested.
    """

    labels: np.ndarray
    confidence: np.ndarray
    scores: np.ndarray | None = None
    summary: ResultSummary | None = None
    anomaly: np.ndarray | None = None


def scores_to_result(
    raw: Tensor,
    output_size: tuple[int, int],
    *,
    confidence_threshold: float = 0.0,
    return_scores: bool = False,
    resize: ResizeMode = "scores",
    ignore_index: int = 255,
    summarize: bool = False,
    temperature: float = 1.0,
    anomaly_method: AnomalyMethod | None = None,
    anomaly_threshold: float | None = None,
    return_anomaly: bool = False,
    class_map: BoundClassMap | None = None,
) -> SegmentationResult:
    """Raw non-negative class scores -> normalized scores, confidence, labels and anomaly.

    Args:
        raw: (C, h, w) float scores at model resolution (Mask2Former's raw semantic scores).
        output_size: (H, W) of the result.
        confidence_threshold: pixels whose confidence is below it get ``ignore_index``.
        return_scores: keep the (C, H, W) normalized scores in the result.
        resize: "scores": bilinear resize of the scores, then argmax (the reference's order);
            "labels": argmax at model resolution, then nearest resize of labels and confidence.
        summarize: compute the result's :class:`ResultSummary` (on the scores' device).
        temperature: calibration temperature of the probabilities (1 = ``s / s.sum(0)``).
        anomaly_method: the per-pixel anomaly score to compute from the raw scores (None:
            none); ``anomaly_threshold``: the score above which the summary counts a pixel as
            anomalous (None: the method's default,
            :data:`~vltseg_ros.config.anomaly_methods.DEFAULT_THRESHOLDS`);
            ``return_anomaly``: keep the (H, W) score in the result.
        class_map: labels, confidence, scores and summary in its output classes
            (:func:`merge_probabilities`); None: the model's classes.

    Returns:
        The result with numpy arrays on the host.
    """
    output_size = (int(output_size[0]), int(output_size[1]))
    # The anomaly score at model resolution (tanh over C full-size maps would cost ~5 % of a
    # CPU frame); its anomalous share is counted there, and the map is resized like the
    # scores only when it is returned.
    anomaly = anomalous = None
    if anomaly_method is not None:
        anomaly = anomaly_score(raw, anomaly_method, temperature)
        anomalous = anomaly > resolve_threshold(anomaly_method, anomaly_threshold)
        if not return_anomaly:
            anomaly = None
        elif resize == "scores":
            anomaly = _resize(anomaly[None], output_size)[0]
        else:
            anomaly = resize_nearest(anomaly, output_size)
    if resize == "scores":
        raw = _resize(raw, output_size)
    probs = apply_temperature(raw, temperature)
    if class_map is None:
        confidence, labels = probs.max(0)
        labels = labels.to(torch.uint8)
    else:
        probs, labels, confidence = merge_probabilities(probs, class_map)
    if confidence_threshold > 0:
        labels[confidence < confidence_threshold] = ignore_index
    if resize == "labels":
        labels = resize_nearest(labels, output_size)
        confidence = resize_nearest(confidence, output_size)
        probs = _resize(probs, output_size) if return_scores else probs
    return SegmentationResult(
        labels=labels.cpu().numpy(),
        confidence=confidence.cpu().numpy(),
        scores=probs.cpu().numpy() if return_scores else None,
        summary=summarize_result(labels, confidence, probs.shape[0], anomalous)
        if summarize
        else None,
        anomaly=None if anomaly is None else anomaly.cpu().numpy(),
    )
