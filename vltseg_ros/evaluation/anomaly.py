"""Pixel-level anomaly-detection metrics: AUROC, average precision and FPR at 95 % TPR.

The metrics are those of the anomaly-segmentation benchmarks (SegmentMeIfYouCan, Fishyscapes,
RbA's evaluation): every non-void pixel of every frame is one sample of a binary problem
(anomaly = positive), ranked by its anomaly score (higher = more anomalous), and the three
numbers are computed with scikit-learn on all of them pooled:

- ``auroc``: :func:`sklearn.metrics.roc_auc_score`;
- ``average_precision``: :func:`sklearn.metrics.average_precision_score` (the area under the
  precision-recall curve as a step sum, what the benchmarks call AP or AUPRC);
- ``fpr_at_95_tpr``: the false positive rate at the first threshold of
  :func:`sklearn.metrics.roc_curve` (thresholds in decreasing order) whose TPR is **>= 0.95**,
  the convention of SegmentMeIfYouCan's ``road_anomaly_benchmark`` (``np.searchsorted(tpr,
  0.95)``). RbA's ``OODEvaluator.calculate_auroc`` takes the first TPR **> 0.95** instead; the
  two differ only when some threshold gives a TPR of exactly 0.95, where RbA's value is the FPR
  of the next (lower) threshold, so it is never smaller than this one.

Truth maps are (H, W) uint8: 0 in-distribution, 1 anomaly, any other value (255) void.

Memory: pooled pixels are kept as a float32 sampling key, a float32 score and a bool label (9
bytes a pixel). Beyond ``max_pixels`` (default 10 million, about 90 MB)
:class:`AnomalyAccumulator` keeps a uniform random sample of exactly ``max_pixels`` non-void
pixels (bottom-k sampling, see there), so that 100 frames of 2 megapixels do not need 2 GB
plus scikit-learn's float64 copies.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from vltseg_ros.errors import ConfigError, EvaluationError

_log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 10_000_000
"""Default cap on the pixels :class:`AnomalyAccumulator` keeps (about 100 MB)."""

TPR_LEVEL = 0.95
"""The true positive rate at which :attr:`AnomalyMetrics.fpr_at_95_tpr` is read."""

IN_DISTRIBUTION, ANOMALY = 0, 1
"""Truth values; every other value is void."""


@dataclass(frozen=True)
class AnomalyMetrics:
    """Anomaly-detection metrics of pooled pixels (definitions: module docstring).

    Attributes:
        auroc: area under the ROC curve, in [0, 1].
        average_precision: average precision (area under the precision-recall curve), [0, 1].
        fpr_at_95_tpr: false positive rate at the first threshold with TPR >= 0.95, [0, 1].
        pixels: non-void pixels added (all of them, also beyond the sampling cap).
        anomaly_pixels: anomaly pixels among ``pixels``.
        sampled_pixels: pixels the metrics were computed on (``pixels`` when under the cap).
    """

    auroc: float
    average_precision: float
    fpr_at_95_tpr: float
    pixels: int
    anomaly_pixels: int
    sampled_pixels: int

    def to_dict(self) -> dict[str, float | int]:
        """The metrics as a JSON-ready dict (plain floats and ints), keyed by field name."""
        return dataclasses.asdict(self)


class AnomalyAccumulator:
    """Pools (anomaly score, truth) pixels over frames and computes :class:`AnomalyMetrics`.

    While at most ``max_pixels`` non-void pixels were added, every one of them is kept and the
    metrics are exact. Beyond, it keeps a uniform random sample of exactly ``max_pixels`` of
    them (bottom-k sampling, a form of reservoir sampling): each pixel gets an independent
    uniform key from a generator seeded with ``seed``, and the pixels with the ``max_pixels``
    smallest keys are kept. Every added pixel thus has the same chance of being kept, whatever
    its score, label or frame, so the sample is unbiased and the metrics differ from the exact
    ones only by sampling noise, which shrinks as more anomaly pixels are kept. The same frames
    added in the same order with the same seed give the same sample and the same metrics.

    Args:
        max_pixels: most pixels kept (>= 1).
        seed: seed of the sampling keys.

    Raises:
        ConfigError: ``max_pixels`` < 1.
    """

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS, seed: int = 0) -> None:
        if int(max_pixels) < 1:
            raise ConfigError(f"max_pixels must be >= 1, got {max_pixels}")
        self.max_pixels = int(max_pixels)
        self._rng = np.random.default_rng(seed)
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # keys, scores, y
        self._buffered = 0
        self._threshold = np.inf  # keys >= this can no longer enter the sample
        self.pixels = 0
        """Non-void pixels added so far."""
        self.anomaly_pixels = 0
        """Anomaly pixels added so far."""

    def add(self, scores: np.ndarray, truth: np.ndarray) -> None:
        """Add one frame.

        Args:
            scores: (H, W) real anomaly scores (any float or int dtype, kept as float32);
                higher = more anomalous. Must be finite on non-void pixels.
            truth: (H, W) integer truth: 0 in-distribution, 1 anomaly, other values void.

        Raises:
            EvaluationError: the shapes differ or are not 2-D, ``truth`` is not integer,
                ``scores`` not real, or a non-void score is NaN or infinite.
        """
        scores, truth = np.asarray(scores), np.asarray(truth)
        _check_frame(scores, truth)
        valid = (truth == IN_DISTRIBUTION) | (truth == ANOMALY)
        values = scores[valid].astype(np.float32)
        labels = truth[valid] == ANOMALY
        if not np.isfinite(values).all():
            raise EvaluationError(
                f"anomaly scores hold {int((~np.isfinite(values)).sum())} NaN or infinite "
                "value(s) on non-void pixels; fix the score computation (e.g. log of 0)"
            )
        self.pixels += values.size
        self.anomaly_pixels += int(labels.sum())
        if values.size == 0:
            return
        keys = self._rng.random(values.size, dtype=np.float32)
        if np.isfinite(self._threshold):
            entering = keys < self._threshold
            keys, values, labels = keys[entering], values[entering], labels[entering]
        self._chunks.append((keys, values, labels))
        self._buffered += keys.size
        if self._buffered > self.max_pixels + self.max_pixels // 4:  # amortized pruning
            self._prune()

    def merge(self, other: AnomalyAccumulator) -> None:
        """Add ``other``'s pixels (e.g. another process's share of the frames).

        While all pixels of both fit ``max_pixels``, every one is kept and the metrics equal
        those of one accumulator given all frames, bit for bit (the metrics do not depend on
        the pixels' order). Beyond, the pixels of smallest key among both samples are kept:
        a uniform sample of all pixels when the two were seeded differently.

        Raises:
            ConfigError: ``other`` keeps another number of pixels.
        """
        if other.max_pixels != self.max_pixels:
            raise ConfigError(
                f"cannot merge a sample of {other.max_pixels} pixels into one of "
                f"{self.max_pixels}: give both the same max_pixels"
            )
        self.pixels += other.pixels
        self.anomaly_pixels += other.anomaly_pixels
        self._chunks += other._chunks
        self._buffered += other._buffered
        self._threshold = min(self._threshold, other._threshold)
        if self._buffered > self.max_pixels + self.max_pixels // 4:
            self._prune()

    def result(self) -> AnomalyMetrics:
        """The metrics of the pixels added so far (or of their sample beyond the cap).

        Raises:
            EvaluationError: no anomaly pixel or no in-distribution pixel was added (or, with
                a very rare class, none is left in the sample: raise ``max_pixels``).
        """
        normal = self.pixels - self.anomaly_pixels
        for what, count in (("anomaly (1)", self.anomaly_pixels), ("in-distribution (0)", normal)):
            if count == 0:
                raise EvaluationError(
                    f"the truth of the {self.pixels} non-void pixels added holds no "
                    f"{what} pixel: AUROC, AP and FPR95 need both; check the data set's labels "
                    "(0 in-distribution, 1 anomaly, 255 void)"
                )
        if self._buffered > self.max_pixels:
            self._prune()
        _, scores, labels = self._sample()
        positives = int(labels.sum())
        if positives in (0, labels.size):
            raise EvaluationError(
                f"the {labels.size}-pixel sample of {self.pixels} pixels lost every "
                f"{'anomaly' if positives == 0 else 'in-distribution'} pixel; raise max_pixels"
            )
        auroc, average_precision, fpr95 = binary_metrics(labels, scores)
        return AnomalyMetrics(
            auroc=auroc,
            average_precision=average_precision,
            fpr_at_95_tpr=fpr95,
            pixels=self.pixels,
            anomaly_pixels=self.anomaly_pixels,
            sampled_pixels=int(labels.size),
        )

    def _sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kept (keys, scores, labels), concatenated into one chunk."""
        if len(self._chunks) > 1:
            columns = zip(*self._chunks, strict=True)
            self._chunks = [tuple(np.concatenate(column) for column in columns)]
        return self._chunks[0]

    def _prune(self) -> None:
        """Keep the ``max_pixels`` pixels of smallest key."""
        if not np.isfinite(self._threshold):
            _log.info(
                "anomaly metrics: over %d pixels, keeping a uniform sample of that many",
                self.max_pixels,
            )
        keys, scores, labels = self._sample()
        kept = np.argpartition(keys, self.max_pixels - 1)[: self.max_pixels]
        self._chunks = [(keys[kept], scores[kept], labels[kept])]
        self._buffered = self.max_pixels
        self._threshold = float(self._chunks[0][0].max())


def binary_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """(AUROC, average precision, FPR at TPR >= 0.95) of pixels, with scikit-learn.

    Args:
        is_anomaly: (N,) bool, True for anomaly pixels; both classes must occur.
        scores: (N,) float anomaly scores, higher = more anomalous.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    auroc = float(roc_auc_score(is_anomaly, scores))
    average_precision = float(average_precision_score(is_anomaly, scores))
    fpr, tpr, _ = roc_curve(is_anomaly, scores)
    return auroc, average_precision, fpr_at_tpr(fpr, tpr)


def fpr_at_tpr(fpr: np.ndarray, tpr: np.ndarray, level: float = TPR_LEVEL) -> float:
    """FPR of the first ROC point whose TPR is >= ``level`` (SegmentMeIfYouCan's rule).

    Args:
        fpr: (K,) float false positive rates of :func:`sklearn.metrics.roc_curve`.
        tpr: (K,) float true positive rates, non-decreasing, ending at 1.
        level: TPR to reach, in (0, 1].
    """
    return float(fpr[min(int(np.searchsorted(tpr, level, side="left")), len(fpr) - 1)])


def _check_frame(scores: np.ndarray, truth: np.ndarray) -> None:
    if scores.shape != truth.shape or scores.ndim != 2:
        raise EvaluationError(
            f"anomaly scores {scores.shape} and truth {truth.shape} must both be (H, W) of the "
            "same size (resize the scores to the label's resolution)"
        )
    if not np.issubdtype(truth.dtype, np.integer):
        raise EvaluationError(f"anomaly truth must be an integer array, got {truth.dtype}")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise EvaluationError(f"anomaly scores must be real numbers, got {scores.dtype}")
