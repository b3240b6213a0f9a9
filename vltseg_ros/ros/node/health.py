"""Per-camera health for /diagnostics: one object counts a camera's frames, measures its rates
and latency percentiles, and fills its own DiagnosticStatus.

:class:`CameraHealth` is shaped like diagnostic_updater's ``FrequencyStatus`` /
``TimeStampStatus``: a ``name``, event methods called where things happen (the scheduler counts
received / busy / stale frames, the worker bad input, errors and publications, each once), and
``run(stat)`` filling a ``DiagnosticStatusWrapper`` (``summary``, ``mergeSummary``, ``add``).
On a ROS 2 machine with diagnostic_updater installed its wrapper is used, and
``Updater.add(health)`` can run the same object; here a small stand-in with those methods does.
Rates use the monotonic clock (real processing rates, also under ``use_sim_time``). With a
calibrated checkpoint it also holds the camera's domain-shift monitor
(:class:`vltseg_ros.inference.domain_shift.ShiftMonitor`, on header stamps) and reports its
verdict.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Literal

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vltseg_ros.config.model_config import Calibration
from vltseg_ros.inference.domain_shift import ShiftMonitor
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.ros.node.settings import NodeSettings

try:  # the library's own wrapper where diagnostic_updater is installed (ROS 2 machines)
    from diagnostic_updater import DiagnosticStatusWrapper
except ImportError:

    class DiagnosticStatusWrapper(DiagnosticStatus):  # type: ignore[no-redef]
        """diagnostic_updater's wrapper API: ``summary``, ``mergeSummary``, ``add``."""

        def summary(self, level: bytes, message: str) -> None:
            self.level, self.message = level, str(message)

        def mergeSummary(self, level: bytes, message: str) -> None:
            if (level > DiagnosticStatus.OK) == (self.level > DiagnosticStatus.OK):
                self.message = f"{self.message}; {message}" if self.message else message
            elif level > self.level:
                self.message = message
            self.level = max(self.level, level)

        def add(self, key: str, value: object) -> None:
            self.values.append(KeyValue(key=key, value=str(value)))


Drop = Literal["busy", "stale"]


class CameraHealth:
    """Thread-safe health of one camera.

    Args:
        name: the diagnostic status name (``<node>: camera <camera>``).
        window: seconds over which rates are measured.
        samples: latencies kept for the percentiles.
    """

    def __init__(self, name: str, window: float = 5.0, samples: int = 200) -> None:
        self.name = name
        self._window = window
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[float] = deque()
        self._latency: deque[float] = deque(maxlen=samples)
        self._inference: deque[float] = deque(maxlen=samples)
        self._counts: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._last_error = ""
        self._ahead = 0.0  # how far the last mismatched header stamp was ahead [s]
        self._shift: ShiftMonitor | None = None
        self._shift_off = "off: no model loaded"

    def watch_shift(self, monitor: ShiftMonitor | None, reason: str = "") -> None:
        """Compare this camera's frames with a calibration set (None: no monitor, and
        ``reason`` says why in the diagnostics)."""
        with self._lock:
            self._shift, self._shift_off = monitor, f"off: {reason}"

    def frame_statistics(
        self,
        stamp: float,
        mean_confidence: float,
        anomaly_fraction: float,
        class_fraction: np.ndarray | None = None,
    ) -> float:
        """Record a segmented frame's statistics (``stamp``: header stamp, s; the summary's
        (C,) ``class_fraction``, None: no class term); returns its shift score, or -1 without
        a monitor."""
        with self._lock:
            if self._shift is None:
                return -1.0
            return self._shift.add(stamp, mean_confidence, anomaly_fraction, class_fraction)

    def received(self) -> None:
        """A frame arrived."""
        with self._lock:
            self._counts["received"] += 1
            self._inputs.append(time.monotonic())

    def dropped(self, reason: Drop) -> None:
        """A frame was replaced before inference took it (busy) or was too old (stale)."""
        with self._lock:
            self._counts[f"dropped_{reason}"] += 1

    def bad_input(self, detail: str) -> None:
        """A frame could not be decoded or was invalid."""
        with self._lock:
            self._counts["dropped_bad_input"] += 1
            self._last_error = detail

    def failed(self, detail: str) -> None:
        """Processing failed (inference or publishing)."""
        with self._lock:
            self._counts["errors"] += 1
            self._last_error = detail

    def clock_mismatch(self, ahead: float) -> None:
        """A frame's header stamp was ``ahead`` s ahead of the node's clock (more than
        :data:`~vltseg_ros.ros.node.scheduling.CLOCK_TOLERANCE`): its latency is unknown."""
        with self._lock:
            self._counts["clock_mismatch"] += 1
            self._ahead = ahead

    def published(self, latency: float | None, inference: float) -> None:
        """A result was published ``latency`` s after capture (None: unknown, left out of the
        percentiles); the engine took ``inference``."""
        with self._lock:
            self._counts["published"] += 1
            self._outputs.append(time.monotonic())
            if latency is not None:
                self._latency.append(latency)
            self._inference.append(inference)

    def counts(self) -> dict[str, int]:
        """received, published, dropped_busy / _stale / _bad_input, errors and clock_mismatch
        so far."""
        with self._lock:
            return {key: self._counts[key] for key in _COUNTS}

    def run(self, stat: DiagnosticStatusWrapper) -> DiagnosticStatusWrapper:
        """Fill ``stat``: rates (Hz), latency percentiles (ms), counts and the last error.

        Level: ERROR after processing errors since the last run; WARN when frames arrive but
        none is published, or frames were dropped as stale or bad since the last run (busy
        drops are normal: a camera faster than inference), or frames stamped ahead of the
        node's clock arrived since the last run (a clock mismatch), or the domain-shift monitor
        sees a shift; else OK.
        """
        now = time.monotonic()
        with self._lock:
            input_rate, output_rate = (
                _rate(self._inputs, now, self._window),
                _rate(self._outputs, now, self._window),
            )
            new = {key: self._counts[key] - self._reported[key] for key in _COUNTS}
            self._reported = Counter(self._counts)
            values = {
                "input_rate_hz": input_rate,
                "output_rate_hz": output_rate,
                **_percentiles("latency", self._latency),
                **_percentiles("inference", self._inference),
                **{key: self._counts[key] for key in _COUNTS},
                "last_error": self._last_error,
            }
            ahead = self._ahead
            shift = None if self._shift is None else self._shift.status()
            if shift is None:
                values["domain_shift"] = self._shift_off
            else:
                values["domain_shift"] = shift.message
                values["shift_score"] = shift.score
        stat.summary(DiagnosticStatus.OK, "ok")
        if new["errors"]:
            stat.mergeSummary(DiagnosticStatus.ERROR, f"{new['errors']} processing error(s)")
        if input_rate > 0 and output_rate == 0:
            stat.mergeSummary(DiagnosticStatus.WARN, "frames arrive but no result is published")
        if new["dropped_stale"] or new["dropped_bad_input"]:
            stat.mergeSummary(DiagnosticStatus.WARN, "frames dropped (stale or bad input)")
        if new["clock_mismatch"]:
            stat.mergeSummary(
                DiagnosticStatus.WARN,
                f"header stamps are {ahead:.1f} s ahead of the node's clock: clock mismatch "
                "(use_sim_time?)",
            )
        if shift is not None and shift.shifted:
            stat.mergeSummary(DiagnosticStatus.WARN, shift.message)
        for key, value in values.items():
            stat.add(key, _text(value))
        return stat


_COUNTS = (
    "received",
    "published",
    "dropped_stale",
    "dropped_busy",
    "dropped_bad_input",
    "errors",
    "clock_mismatch",
)


def _rate(times: deque[float], now: float, window: float) -> float:
    """Events per second in the last ``window`` s (0 with fewer than 2); trims ``times``."""
    while times and times[0] < now - window:
        times.popleft()
    if len(times) < 2:
        return 0.0
    span = max(now - times[0], times[-1] - times[0])
    return (len(times) - 1) / span if span > 0 else 0.0


def _percentiles(kind: str, samples: deque[float]) -> dict[str, float]:
    p50, p95 = np.percentile(samples, (50, 95)) * 1e3 if samples else (float("nan"),) * 2
    return {f"{kind}_p50_ms": float(p50), f"{kind}_p95_ms": float(p95)}


def _text(value: object) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.3f}"
    return str(value)


_NO_CALIBRATION = "none (temperature 1, domain-shift warning off)"


def engine_status(
    stat: DiagnosticStatusWrapper, settings: SegmenterSettings, segmenter: Segmenter | None
) -> DiagnosticStatusWrapper:
    """Fill ``stat`` with the model, weights, backend, engine and batch size; WARN while
    inactive or with random weights."""
    calibration = segmenter.config.calibration if segmenter else None
    values = {
        "model": segmenter.config.name if segmenter else settings.model,
        "checkpoint": settings.weights or "none (random weights)",
        "backend": segmenter.backend if segmenter else settings.backend,
        "engine": segmenter.description if segmenter else "",
        "device": settings.device,
        "precision": settings.precision,
        "mode": segmenter.inference.mode if segmenter else "",
        # lowered after a GPU out-of-memory error (see Segmenter)
        "batch_size": segmenter.batch_size if segmenter else settings.batch_size,
        "calibration": calibration.describe() if calibration else _NO_CALIBRATION,
        "active": segmenter is not None,
    }
    if segmenter is None:
        stat.summary(DiagnosticStatus.WARN, "inactive: no model loaded")
    elif segmenter.random_weights:
        stat.summary(DiagnosticStatus.WARN, "RANDOM weights: output is meaningless")
    else:
        stat.summary(DiagnosticStatus.OK, "ok")
    for key, value in values.items():
        stat.add(key, value)
    return stat


def node_statuses(
    node_name: str,
    settings: NodeSettings,
    segmenter: Segmenter | None,
    cameras: dict[str, CameraHealth],
) -> list[DiagnosticStatusWrapper]:
    """One /diagnostics round: the engine's status, then each camera's (``cameras``: name ->
    health)."""
    engine = DiagnosticStatusWrapper(
        name=f"{node_name}: engine", hardware_id=settings.segmenter.device
    )
    statuses = [engine_status(engine, settings.segmenter, segmenter)]
    for name, health in cameras.items():
        statuses.append(health.run(DiagnosticStatusWrapper(name=health.name, hardware_id=name)))
    return statuses


def watch_shift(
    cameras: list[CameraHealth], calibration: Calibration | None, settings: NodeSettings
) -> tuple[str, str]:
    """Give every camera a domain-shift monitor against the checkpoint's ``calibration``;
    returns what to log, (level "info" or "warning", message), or ("", "")."""
    outputs = settings.outputs
    method = (outputs.anomaly_method, outputs.threshold)
    same = calibration is not None and method == (
        calibration.anomaly_method,
        calibration.anomaly_threshold,
    )
    for health in cameras:
        monitor = None
        if calibration is not None:
            window, threshold = settings.shift_window, settings.shift_threshold
            monitor = ShiftMonitor(
                calibration,
                window,
                threshold,
                compare_anomaly=same,
                compare_classes=not outputs.class_map,
            )
        health.watch_shift(monitor, "the checkpoint has no calibration")
    if calibration is None:
        return (
            "info",
            "domain-shift warning off: the checkpoint has no calibration (vltseg calibrate)",
        )
    notes = []
    if not same:
        notes.append(
            f"anomaly_method / anomaly_threshold ({method[0]}, {method[1]:g}) differ from the "
            f"calibration's ({calibration.anomaly_method}, {calibration.anomaly_threshold:g}): "
            "the domain-shift score leaves its anomaly term out"
        )
    if not calibration.class_fraction:
        notes.append(
            "the calibration predates the class histogram: the domain-shift score has no class "
            "term (standard deviations of confidence and anomalous pixels, as before it) and "
            "misses a scene the model is sure of but wrong about, like a dark night; re-run "
            "vltseg calibrate"
        )
    elif outputs.class_map:
        notes.append(
            "with a class_map the frames' classes are not the calibration's: the domain-shift "
            "score has no class term (standard deviations of confidence and anomalous pixels)"
        )
    return ("warning", "; ".join(notes)) if notes else ("", "")
