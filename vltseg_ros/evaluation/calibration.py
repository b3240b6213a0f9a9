"""Confidence calibration: expected calibration error, reliability diagrams, temperature scaling.

**ECE** (Guo et al., "On Calibration of Modern Neural Networks", 2017): pixels are put in
``bins`` (15 by default) equal-width confidence bins over [0, 1], bin b holding the confidences
in (lower_b, upper_b] (the first bin also holds 0), and

    ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|

with n_b the pixels in bin b, N all pixels, accuracy_b the share of them predicted correctly
and confidence_b their mean confidence. :class:`CalibrationAccumulator` keeps three sums per
bin, so its memory does not grow with the frames.

**Temperature scaling** (the same paper) divides a network's log-scores by one scalar T > 0
before the softmax, T fitted to minimize the negative log-likelihood on held-out pixels. This
project's probabilities are the raw Mask2Former semantic scores s_k >= 0 divided by their
per-pixel sum, p_k = s_k / sum_j s_j = softmax(log s)_k; with a temperature they become
p_k ∝ s_k^(1/T) (:func:`vltseg_ros.inference.scores.apply_temperature`), and T = 1 is
exactly today's output. T > 1 softens overconfident predictions, T < 1 sharpens; the argmax
(the labels) never changes.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vltseg_ros.errors import ConfigError, EvaluationError

_log = logging.getLogger(__name__)

DEFAULT_BINS = 15
"""Confidence bins of the ECE (Guo et al. 2017)."""

TEMPERATURE_RANGE = (0.05, 20.0)
"""Default search interval of :func:`fit_temperature`."""

EPS = 1e-12
"""Smallest raw score taken before the logarithm (the predictor's normalization epsilon)."""
_TOLERANCE = 1e-6  # confidences this far outside [0, 1] are float rounding: clipped


@dataclass(frozen=True)
class CalibrationResult:
    """Reliability statistics of pooled pixels (definitions: module docstring).

    Attributes:
        ece: expected calibration error, in [0, 1].
        bin_edges: (B + 1,) float64 edges 0, 1/B, ..., 1; bin b is (edges[b], edges[b + 1]].
        bin_counts: (B,) int64 pixels per bin.
        bin_accuracy: (B,) float64 share of correct pixels per bin (NaN for empty bins).
        bin_confidence: (B,) float64 mean confidence per bin (NaN for empty bins).
        pixels: pixels counted (sum of ``bin_counts``).
    """

    ece: float
    bin_edges: np.ndarray
    bin_counts: np.ndarray
    bin_accuracy: np.ndarray
    bin_confidence: np.ndarray
    pixels: int

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: floats, ints and lists (empty bins' NaN as None)."""

        def listed(values: np.ndarray) -> list:
            return [None if math.isnan(v) else float(v) for v in values.tolist()]

        return {
            "ece": self.ece,
            "pixels": self.pixels,
            "bin_edges": self.bin_edges.tolist(),
            "bin_counts": self.bin_counts.tolist(),
            "bin_accuracy": listed(self.bin_accuracy),
            "bin_confidence": listed(self.bin_confidence),
        }


class CalibrationAccumulator:
    """Per-bin counts, confidence sums and correct counts over frames (memory O(bins)).

    Args:
        bins: number of equal-width confidence bins over [0, 1] (>= 1).

    Raises:
        ConfigError: ``bins`` < 1.
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if int(bins) < 1:
            raise ConfigError(f"bins must be >= 1, got {bins}")
        self.bins = int(bins)
        self.edges = np.linspace(0.0, 1.0, self.bins + 1)
        self.counts = np.zeros(self.bins, dtype=np.int64)
        self.confidence_sums = np.zeros(self.bins, dtype=np.float64)
        self.correct_counts = np.zeros(self.bins, dtype=np.int64)

    def add(
        self, confidence: np.ndarray, correct: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add one frame.

        Args:
            confidence: (H, W) float confidence of the predicted class, in [0, 1] (values up to
                1e-6 outside are clipped, for float rounding).
            correct: (H, W) bool, True where the predicted class is the true one.
            valid: (H, W) bool, the pixels to count (e.g. label != 255); None: all of them.

        Raises:
            EvaluationError: the shapes differ, ``correct`` or ``valid`` is not bool, or a
                counted confidence is NaN or outside [0, 1].
        """
        confidence, correct = np.asarray(confidence), np.asarray(correct)
        arrays = {"correct": correct} if valid is None else {"correct": correct, "valid": valid}
        for name, array in arrays.items():
            array = np.asarray(array)
            if array.shape != confidence.shape:
                raise EvaluationError(
                    f"{name} {array.shape} and confidence {confidence.shape} must have one shape"
                )
            if array.dtype != np.bool_:
                raise EvaluationError(f"{name} must be a bool array, got {array.dtype}")
        if valid is not None:
            keep = np.asarray(valid)
            confidence, correct = confidence[keep], correct[keep]
        values = np.asarray(confidence, dtype=np.float64).ravel()
        in_range = (values >= -_TOLERANCE) & (values <= 1.0 + _TOLERANCE)  # False for NaN
        if not in_range.all():
            bad = values[~in_range]
            raise EvaluationError(
                f"{bad.size} confidence value(s) are NaN or outside [0, 1] (e.g. {bad[0]}); "
                "pass probabilities, not raw scores"
            )
        values = np.clip(values, 0.0, 1.0)
        index = bin_index(values, self.edges)
        self.counts += np.bincount(index, minlength=self.bins)
        self.confidence_sums += np.bincount(index, weights=values, minlength=self.bins)
        self.correct_counts += np.bincount(index[correct.ravel()], minlength=self.bins)

    def merge(self, other: CalibrationAccumulator) -> None:
        """Add ``other``'s pixels (an accumulator with the same bins)."""
        if other.bins != self.bins:
            raise ConfigError(f"cannot merge {other.bins} bins into {self.bins}")
        self.counts += other.counts
        self.confidence_sums += other.confidence_sums
        self.correct_counts += other.correct_counts

    def result(self) -> CalibrationResult:
        """ECE and per-bin statistics of the pixels added so far.

        Raises:
            EvaluationError: no pixel was added.
        """
        total = int(self.counts.sum())
        if total == 0:
            raise EvaluationError("no pixel was added to the calibration statistics")
        filled = self.counts > 0
        accuracy = np.full(self.bins, np.nan)
        mean_confidence = np.full(self.bins, np.nan)
        accuracy[filled] = self.correct_counts[filled] / self.counts[filled]
        mean_confidence[filled] = self.confidence_sums[filled] / self.counts[filled]
        gaps = np.abs(accuracy[filled] - mean_confidence[filled])
        ece = float(np.sum(self.counts[filled] / total * gaps))
        return CalibrationResult(
            ece=ece,
            bin_edges=self.edges.copy(),
            bin_counts=self.counts.copy(),
            bin_accuracy=accuracy,
            bin_confidence=mean_confidence,
            pixels=total,
        )


def bin_index(confidence: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(N,) int64 bin of each (N,) confidence in [0, 1]: b with edges[b] < c <= edges[b + 1],
    and bin 0 for c = 0 (edges: (B + 1,) increasing, from 0 to 1)."""
    index = np.searchsorted(edges, confidence, side="left") - 1
    return np.clip(index, 0, len(edges) - 2).astype(np.int64)


def reliability_diagram(result: CalibrationResult, path: Path, title: str) -> Path:
    """Reliability diagram as PNG: accuracy per confidence bin, the diagonal of perfect
    calibration, the gap to it per bin, and the ECE in the legend. Returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    edges = result.bin_edges
    lefts, widths = edges[:-1], np.diff(edges)
    filled = result.bin_counts > 0
    accuracy = np.where(filled, result.bin_accuracy, 0.0)
    gap = np.where(filled, result.bin_confidence - accuracy, 0.0)  # empty bins: no bar
    figure = Figure(figsize=(5.0, 5.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(
        lefts,
        accuracy,
        width=widths,
        align="edge",
        color="#4878a8",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    axes.bar(
        lefts,
        gap,
        bottom=accuracy,
        width=widths,
        align="edge",
        color="#d65f5f",
        alpha=0.35,
        edgecolor="#d65f5f",
        hatch="//",
        linewidth=0.5,
        label="gap to mean confidence",
    )
    axes.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    axes.plot([], [], " ", label=f"ECE = {100.0 * result.ece:.2f} %")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_aspect("equal")
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title(
        f"{title}\nECE {100.0 * result.ece:.2f} % over {result.pixels} pixels", fontsize=9
    )
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def negative_log_likelihood(
    log_scores: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    *,
    ignore_index: int = 255,
) -> float:
    """Mean negative log-likelihood of ``softmax(log_scores / temperature)`` (natural log).

    Args:
        log_scores: (N, C) float log-scores (this project: ``log(clamp_min(s, EPS))`` of the
            raw semantic scores; a softmax network: its logits).
        labels: (N,) int64 true classes in [0, C); ``ignore_index`` entries are skipped.
        temperature: T > 0.
        ignore_index: label value of pixels left out.

    Raises:
        ConfigError: ``temperature`` is not a finite positive number.
        EvaluationError: see :func:`fit_temperature`.
    """
    _check_temperature(temperature)
    log_scores, labels = _fit_inputs(log_scores, labels, ignore_index)
    return _nll(log_scores, labels, math.log(temperature))


def fit_temperature(
    log_scores: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = 255,
    bounds: tuple[float, float] = TEMPERATURE_RANGE,
    tolerance: float = 1e-5,
) -> float:
    """The temperature T minimizing :func:`negative_log_likelihood` (Guo et al. 2017).

    Bounded Brent search over log T (:func:`scipy.optimize.minimize_scalar`), deterministic;
    the NLL is convex in 1 / T, hence unimodal in log T, so the minimum found is the global
    one within ``bounds``.

    Args:
        log_scores: (N, C) float log-scores (see :func:`negative_log_likelihood`), any device.
        labels: (N,) int64 true classes in [0, C); ``ignore_index`` entries are skipped.
        ignore_index: label value of pixels left out.
        bounds: (lowest, highest) temperature searched, 0 < lowest < highest.
        tolerance: absolute tolerance on log T (1e-5: T to about 0.001 %).

    Returns:
        T > 0; T = 1 keeps the probabilities as they are. A warning is logged when T lies on a
        bound.

    Raises:
        ConfigError: ``bounds`` are not 0 < lowest < highest.
        EvaluationError: wrong shapes or dtypes, non-finite log-scores, a label outside
            [0, C), or no label left.
    """
    from scipy.optimize import minimize_scalar

    low, high = (float(b) for b in bounds)
    if not 0.0 < low < high < math.inf:
        raise ConfigError(f"temperature bounds must be 0 < lowest < highest, got {bounds}")
    log_scores, labels = _fit_inputs(log_scores, labels, ignore_index)
    found = minimize_scalar(
        lambda log_t: _nll(log_scores, labels, log_t),
        bounds=(math.log(low), math.log(high)),
        method="bounded",
        options={"xatol": tolerance},
    )
    temperature = math.exp(float(found.x))
    if min(abs(found.x - math.log(low)), abs(found.x - math.log(high))) < 10 * tolerance:
        _log.warning("fitted temperature %.4g lies on the search bound %s", temperature, bounds)
    return temperature


def _nll(log_scores: torch.Tensor, labels: torch.Tensor, log_temperature: float) -> float:
    scaled = log_scores / math.exp(log_temperature)
    return float(torch.nn.functional.cross_entropy(scaled, labels))


def _fit_inputs(
    log_scores: torch.Tensor, labels: torch.Tensor, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N', C) float64 log-scores and (N',) int64 labels of the non-ignored pixels."""
    if log_scores.ndim != 2 or not log_scores.is_floating_point():
        raise EvaluationError(
            f"log-scores must be an (N, C) float tensor, got {log_scores.dtype} "
            f"{tuple(log_scores.shape)}"
        )
    if labels.shape != log_scores.shape[:1] or labels.dtype != torch.int64:
        raise EvaluationError(
            f"labels must be an (N,) = ({log_scores.shape[0]},) int64 tensor, got "
            f"{labels.dtype} {tuple(labels.shape)}"
        )
    kept = labels != ignore_index
    log_scores, labels = log_scores[kept].double(), labels[kept]
    if labels.numel() == 0:
        raise EvaluationError("no labelled pixel to fit the temperature on")
    classes = log_scores.shape[1]
    if bool(((labels < 0) | (labels >= classes)).any()):
        raise EvaluationError(f"labels must be class ids in [0, {classes}) or {ignore_index}")
    if not bool(torch.isfinite(log_scores).all()):
        raise EvaluationError("log-scores hold NaN or infinity (take log(clamp_min(s, EPS)))")
    return log_scores, labels


def _check_temperature(temperature: float) -> None:
    number = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not (number and 0.0 < temperature < math.inf):
        raise ConfigError(f"temperature must be a finite number > 0, got {temperature!r}")
