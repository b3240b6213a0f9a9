"""Has the scene left the training domain? Frame statistics against the calibration set's.

A frame is summarized by two numbers the Segmenter computes anyway: its mean winning-class
probability and its share of anomalous pixels. ``vltseg calibrate`` stores their mean and
standard deviation over held-out frames of the training domain (:class:`Calibration`). The
shift score of a frame is how many of those standard deviations it lies on the bad side:

    score = max(0, (ref_conf - conf) / std_conf, (anom - ref_anom) / std_anom)

(the standard deviations floored at :data:`MIN_CONFIDENCE_STD` and :data:`MIN_ANOMALY_STD`, so
a calibration set of near-identical frames does not make every small change look like a
shift). 0 = like the calibration set;
3 = three standard deviations less confident, or more anomalous, than it. A single dark frame
is noise; :class:`ShiftMonitor` judges the mean over a rolling time window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from vltseg_ros.config.model_config import Calibration

MIN_CONFIDENCE_STD = 0.02
"""Floor of the calibration set's standard deviation of mean confidence (a probability)."""
MIN_ANOMALY_STD = 0.005
"""Floor of its standard deviation of anomaly fraction: half a percent of the frame's pixels,
about one small object."""


def shift_score(
    mean_confidence: float,
    anomaly_fraction: float,
    reference: Calibration,
    compare_anomaly: bool = True,
) -> float:
    """The shift score (>= 0) of a frame, or of a window's means (module docstring).

    ``compare_anomaly`` False leaves the anomaly term out (the fractions were counted with
    another anomaly method or threshold than the calibration's, so they do not compare).
    """
    conf_std = max(reference.mean_confidence_std, MIN_CONFIDENCE_STD)
    score = max(0.0, (reference.mean_confidence - mean_confidence) / conf_std)
    if compare_anomaly:
        anom_std = max(reference.anomaly_fraction_std, MIN_ANOMALY_STD)
        score = max(score, (anomaly_fraction - reference.anomaly_fraction) / anom_std)
    return score


@dataclass(frozen=True)
class ShiftStatus:
    """The window's verdict.

    Attributes:
        shifted: the window's score reached the threshold (with enough frames in it).
        score: shift score of the window's means (0 with no frames).
        frames: frames in the window.
        mean_confidence, anomaly_fraction: the window's means.
        message: one line a safety engineer can act on.
    """

    shifted: bool
    score: float
    frames: int
    mean_confidence: float
    anomaly_fraction: float
    message: str


class ShiftMonitor:
    """Rolling window of one camera's frame statistics, compared with the calibration set.

    Args:
        reference: the checkpoint's calibration.
        window: seconds of frames the window holds (by their header stamps).
        threshold: window score at which :meth:`status` reports a shift.
        min_frames: frames the window needs before it may report one.
        compare_anomaly: compare anomaly fractions too (see :func:`shift_score`).
    """

    def __init__(
        self,
        reference: Calibration,
        window: float = 10.0,
        threshold: float = 3.0,
        min_frames: int = 3,
        compare_anomaly: bool = True,
    ) -> None:
        self.reference = reference
        self.window = window
        self.threshold = threshold
        self.min_frames = min_frames
        self.compare_anomaly = compare_anomaly
        self._frames: deque[tuple[float, float, float]] = deque()

    def add(self, stamp: float, mean_confidence: float, anomaly_fraction: float) -> float:
        """Record a frame (``stamp`` in seconds, any monotonic clock); returns its own score.

        Frames older than ``window`` before the newest are dropped; a stamp that goes back
        (a bag restarted, the clock jumped) starts the window afresh.
        """
        if self._frames and stamp < self._frames[-1][0]:
            self._frames.clear()
        self._frames.append((stamp, mean_confidence, anomaly_fraction))
        while self._frames[0][0] < stamp - self.window:
            self._frames.popleft()
        return shift_score(mean_confidence, anomaly_fraction, self.reference, self.compare_anomaly)

    def status(self) -> ShiftStatus:
        """The verdict on the frames in the window."""
        count = len(self._frames)
        reference = self.reference
        if count == 0:
            return ShiftStatus(False, 0.0, 0, 0.0, 0.0, "no frames in the window yet")
        conf = sum(f[1] for f in self._frames) / count
        anom = sum(f[2] for f in self._frames) / count
        score = shift_score(conf, anom, reference, self.compare_anomaly)
        shifted = count >= self.min_frames and score >= self.threshold
        span = self._frames[-1][0] - self._frames[0][0]
        message = (
            f"mean confidence {conf:.2f}, anomalous pixels {100 * anom:.1f} % over the last "
            f"{span:.0f} s ({count} frames); calibration set: {reference.mean_confidence:.2f}, "
            f"{100 * reference.anomaly_fraction:.1f} %; shift score {score:.1f}"
        )
        if shifted:
            message = (
                f"possible domain shift: {message} >= {self.threshold:g}: treat this camera's "
                "segmentation as less reliable"
            )
        return ShiftStatus(shifted, score, count, conf, anom, message)
