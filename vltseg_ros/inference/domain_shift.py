"""Has the scene left the training domain? Frame statistics against the calibration set's.

A frame is summarized by what the Segmenter's summary holds anyway: its mean winning-class
probability ``conf``, its share of anomalous pixels ``anom`` and its predicted-class histogram
``p`` (the share of pixels labelled with each class). ``vltseg calibrate`` stores their means
over held-out frames of the training domain (:class:`Calibration`: ``ref_conf``, ``ref_anom``,
``q``) and the spread of the mean confidence (``std_conf``). The shift score adds up
log-factors, each 0 when the frame is no worse than the reference (``u = 1 - conf + 1e-4``,
``u_ref = 1 - ref_conf + 1e-4``):

    confidence = max(0, ln(u / u_ref)) / max(std_conf / u_ref, 0.5)
    anomaly    = max(0, ln((anom + 0.02) / (ref_anom + 0.02)))
    classes    = sum over classes k of max(0, ln((q_k + 1e-3) / (p_k + 1e-3)))
    score      = max(confidence, anomaly) + classes

The confidence term counts by how many e-folds the frame is more uncertain, in units of the
calibration frames' own spread of log-uncertainty (``std_conf / u_ref``, floored at 0.5: a
factor 1.65); the anomaly term by how many e-folds it has more anomalous pixels (shares under
~2 % count as noise). Both rise when the model is unsure, so only the larger counts. The class
term counts by how many e-folds each class has become rarer (shares under 0.1 % of the pixels
as good as gone): a night frame the model calls building from edge to edge, or a blurred one
whose poles and signs vanished, keeps a confident, anomaly-free output but loses whole classes.
On the demo model a clean 4-frame window scores ~0.6, a fully motion-blurred one ~4, fog and
night from strength 0.5 on 17-27 (``python -m bench.trust_shift``, docs/trust.md).

Without a class term (a calibration made before the class histogram was stored, or frames whose
classes a class map merged: :attr:`ShiftMonitor.compares_classes` False) the score is the one
from before the class term, in standard deviations of the calibration frames' statistics:

    confidence = max(0, (ref_conf - conf) / max(std_conf, 0.02))
    anomaly    = max(0, (anom - ref_anom) / max(std_anom, 0.005))
    score      = max(confidence, anomaly)

It misses a night the model is sure of (docs/trust.md); ``vltseg calibrate`` again to get the
class term. A single frame's class term is noisy (a frame without a pole lacks one):
:class:`ShiftMonitor` judges a rolling time window, the score of its mean confidence, anomaly
share and class histogram.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from vltseg_ros.config.model_config import Calibration

MIN_UNCERTAINTY = 1e-4
"""Added to both uncertainties (1 - confidence) of the confidence term: a frame more sure than
99.99 % is as sure as one at 99.99 %."""
MIN_LOG_UNCERTAINTY_SPREAD = 0.5
"""Floor of the calibration frames' spread of log-uncertainty (``std_conf / u_ref``): frames
whose uncertainty differs by a factor e^0.5 = 1.65 are one spread apart, however alike the
calibration frames were."""
MIN_ANOMALY_SHARE = 0.02
"""Added to both anomalous shares of the anomaly term: a few small objects' worth of pixels."""
MIN_CLASS_SHARE = 1e-3
"""Added to both shares of each class in the class term: a class below a tenth of a percent of
the pixels counts as gone."""
MIN_CONFIDENCE_STD = 0.02
"""Without a class term: floor of the calibration set's standard deviation of mean confidence."""
MIN_ANOMALY_STD = 0.005
"""Without a class term: floor of its standard deviation of anomaly fraction (half a percent of
the pixels, about one small object)."""


@dataclass(frozen=True)
class ShiftTerms:
    """The three terms of a shift score (module docstring), each >= 0.

    Attributes:
        confidence: e-folds of added uncertainty, in spreads of the calibration frames'
            (without a class term: standard deviations of lost confidence).
        anomaly: e-folds of added anomalous pixels (without a class term: standard deviations
            of them); 0 when not compared.
        classes: summed e-folds by which classes became rarer (0 when not compared).
    """

    confidence: float
    anomaly: float
    classes: float

    @property
    def score(self) -> float:
        """The shift score: the larger of confidence and anomaly, plus classes."""
        return max(self.confidence, self.anomaly) + self.classes


def shift_terms(
    mean_confidence: float,
    anomaly_fraction: float,
    reference: Calibration,
    *,
    class_fraction: np.ndarray | None = None,
    compare_anomaly: bool = True,
    compare_classes: bool = True,
) -> ShiftTerms:
    """The terms of a frame's, or a window's means', shift score (module docstring).

    Args:
        mean_confidence: mean winning-class probability, in [0, 1].
        anomaly_fraction: share of anomalous pixels, in [0, 1].
        reference: the calibration.
        class_fraction: (C,) float share of the pixels labelled with each of the model's
            classes (:attr:`ResultSummary.class_fraction`), or None: no class term. Also none
            when the calibration has no class histogram or one of another length.
        compare_anomaly: False leaves the anomaly term out (the fractions were counted with
            another anomaly method or threshold than the calibration's, so they do not
            compare).
        compare_classes: False (or a calibration without a class histogram): the terms
            without a class term, in standard deviations (module docstring).
    """
    if not (compare_classes and reference.class_fraction):
        return _terms_without_classes(
            mean_confidence, anomaly_fraction, reference, compare_anomaly
        )
    reference_uncertainty = 1.0 - reference.mean_confidence + MIN_UNCERTAINTY
    spread = max(reference.mean_confidence_std / reference_uncertainty, MIN_LOG_UNCERTAINTY_SPREAD)
    confidence = (
        math.log((1.0 - mean_confidence + MIN_UNCERTAINTY) / reference_uncertainty) / spread
    )
    anomaly = 0.0
    if compare_anomaly:
        anomaly = math.log(
            (anomaly_fraction + MIN_ANOMALY_SHARE)
            / (reference.anomaly_fraction + MIN_ANOMALY_SHARE)
        )
    classes = 0.0
    if class_fraction is not None and len(class_fraction) == len(reference.class_fraction) > 0:
        ratio = (np.asarray(reference.class_fraction, dtype=np.float64) + MIN_CLASS_SHARE) / (
            np.asarray(class_fraction, dtype=np.float64) + MIN_CLASS_SHARE
        )
        classes = float(np.log(ratio).clip(min=0.0).sum())
    return ShiftTerms(max(0.0, confidence), max(0.0, anomaly), classes)


def _terms_without_classes(
    mean_confidence: float, anomaly_fraction: float, reference: Calibration, compare_anomaly: bool
) -> ShiftTerms:
    """The confidence and anomaly terms in standard deviations (module docstring)."""
    conf_std = max(reference.mean_confidence_std, MIN_CONFIDENCE_STD)
    confidence = max(0.0, (reference.mean_confidence - mean_confidence) / conf_std)
    anomaly = 0.0
    if compare_anomaly:
        anom_std = max(reference.anomaly_fraction_std, MIN_ANOMALY_STD)
        anomaly = max(0.0, (anomaly_fraction - reference.anomaly_fraction) / anom_std)
    return ShiftTerms(confidence, anomaly, 0.0)


def shift_score(
    mean_confidence: float,
    anomaly_fraction: float,
    reference: Calibration,
    compare_anomaly: bool = True,
    class_fraction: np.ndarray | None = None,
    compare_classes: bool = True,
) -> float:
    """The shift score (>= 0) of a frame, or of a window's means: :attr:`ShiftTerms.score` of
    :func:`shift_terms`."""
    return shift_terms(
        mean_confidence,
        anomaly_fraction,
        reference,
        class_fraction=class_fraction,
        compare_anomaly=compare_anomaly,
        compare_classes=compare_classes,
    ).score


@dataclass(frozen=True)
class ShiftStatus:
    """The window's verdict.

    Attributes:
        shifted: the window's score reached the threshold (with enough frames in it).
        score: shift score of the window's means (0 with no frames).
        frames: frames in the window.
        mean_confidence, anomaly_fraction: the window's means.
        message: one line a safety engineer can act on.
        terms: the score's terms (None with no frames).
    """

    shifted: bool
    score: float
    frames: int
    mean_confidence: float
    anomaly_fraction: float
    message: str
    terms: ShiftTerms | None = None


class ShiftMonitor:
    """Rolling window of one camera's frame statistics, compared with the calibration set.

    Args:
        reference: the checkpoint's calibration.
        window: seconds of frames the window holds (by their header stamps).
        threshold: window score at which :meth:`status` reports a shift.
        min_frames: frames the window needs before it may report one.
        compare_anomaly: compare anomaly fractions too (see :func:`shift_terms`).
        compare_classes: compare the frames' class histograms with the calibration's (False
            when the frames' classes are not the model's, e.g. merged by a class map).
    """

    def __init__(
        self,
        reference: Calibration,
        window: float = 10.0,
        threshold: float = 3.0,
        min_frames: int = 3,
        compare_anomaly: bool = True,
        compare_classes: bool = True,
    ) -> None:
        self.reference = reference
        self.window = window
        self.threshold = threshold
        self.min_frames = min_frames
        self.compare_anomaly = compare_anomaly
        self.compares_classes = compare_classes and len(reference.class_fraction) > 0
        """Whether the class term is in the score (False: not asked, or a calibration made
        before the class histogram was stored; the score is then the one without it)."""
        self._frames: deque[tuple[float, float, float, np.ndarray | None]] = deque()

    def add(
        self,
        stamp: float,
        mean_confidence: float,
        anomaly_fraction: float,
        class_fraction: np.ndarray | None = None,
    ) -> float:
        """Record a frame (``stamp`` in seconds, any monotonic clock); returns its own score.

        ``class_fraction``: the frame's (C,) predicted-class shares (None, or a length other
        than the calibration's: the frame has no class term). Frames older than ``window``
        before the newest are dropped; a stamp that goes back (a bag restarted, the clock
        jumped) starts the window afresh.
        """
        if self._frames and stamp < self._frames[-1][0]:
            self._frames.clear()
        shares = None
        if (
            self.compares_classes
            and class_fraction is not None
            and len(class_fraction) == len(self.reference.class_fraction)
        ):
            shares = np.asarray(class_fraction, dtype=np.float64)
        self._frames.append((stamp, mean_confidence, anomaly_fraction, shares))
        while self._frames[0][0] < stamp - self.window:
            self._frames.popleft()
        return shift_score(
            mean_confidence,
            anomaly_fraction,
            self.reference,
            self.compare_anomaly,
            shares,
            self.compares_classes,
        )

    def status(self) -> ShiftStatus:
        """The verdict on the frames in the window."""
        count = len(self._frames)
        reference = self.reference
        if count == 0:
            return ShiftStatus(False, 0.0, 0, 0.0, 0.0, "no frames in the window yet")
        conf = sum(f[1] for f in self._frames) / count
        anom = sum(f[2] for f in self._frames) / count
        histograms = [f[3] for f in self._frames if f[3] is not None]
        shares = np.mean(histograms, axis=0) if histograms else None
        terms = shift_terms(
            conf,
            anom,
            reference,
            class_fraction=shares,
            compare_anomaly=self.compare_anomaly,
            compare_classes=self.compares_classes,
        )
        score = terms.score
        shifted = count >= self.min_frames and score >= self.threshold
        span = self._frames[-1][0] - self._frames[0][0]
        classes = f"{terms.classes:.1f}" if shares is not None else "off"
        message = (
            f"mean confidence {conf:.2f}, anomalous pixels {100 * anom:.1f} % over the last "
            f"{span:.0f} s ({count} frames); calibration set: {reference.mean_confidence:.2f}, "
            f"{100 * reference.anomaly_fraction:.1f} %; shift score {score:.1f} (confidence "
            f"{terms.confidence:.1f}, anomalies {terms.anomaly:.1f}, classes {classes})"
        )
        if shifted:
            message = (
                f"possible domain shift: {message} >= {self.threshold:g}: treat this camera's "
                "segmentation as less reliable"
            )
        return ShiftStatus(shifted, score, count, conf, anom, message, terms)
