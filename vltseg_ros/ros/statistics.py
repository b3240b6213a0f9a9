"""Rates, latency percentiles and error counts for the node's diagnostics (no ROS imports).

Rates are measured on the monotonic clock (real processing rates, also under ``use_sim_time``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np


class RateMeter:
    """Events per second over a sliding time window."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        """Record one event at time ``now`` [s]."""
        self._times.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        """Events per second in the last ``window`` seconds (0 with fewer than 2 events)."""
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self._window:
            self._times.popleft()


class Percentiles:
    """Percentiles of the last ``size`` samples."""

    def __init__(self, size: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Record one sample."""
        self._values.append(value)

    def get(self, *quantiles: float) -> tuple[float, ...]:
        """The requested percentiles (0-100) of the recorded samples; NaN when there are none."""
        if not self._values:
            return tuple(float("nan") for _ in quantiles)
        return tuple(float(v) for v in np.percentile(np.fromiter(self._values, float), quantiles))


@dataclass
class StatsSnapshot:
    """One camera's figures for a diagnostics message (latencies in seconds)."""

    input_rate: float
    output_rate: float
    latency_p50: float
    latency_p95: float
    inference_p50: float
    inference_p95: float
    published: int
    bad_input: int
    errors: int
    last_error: str


class CameraStatistics:
    """Thread-safe figures of one camera: callbacks tick inputs, the worker the rest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inputs = RateMeter()
        self._outputs = RateMeter()
        self._latency = Percentiles()
        self._inference = Percentiles()
        self._published = 0
        self._bad_input = 0
        self._errors = 0
        self._last_error = ""

    def input(self) -> None:
        """A frame arrived."""
        with self._lock:
            self._inputs.tick(time.monotonic())

    def output(self, end_to_end: float, inference: float) -> None:
        """A result was published ``end_to_end`` s after capture; the engine took ``inference``."""
        with self._lock:
            self._outputs.tick(time.monotonic())
            self._latency.add(end_to_end)
            self._inference.add(inference)
            self._published += 1

    def bad_input(self, reason: str) -> None:
        """A frame could not be decoded or was invalid."""
        with self._lock:
            self._bad_input += 1
            self._last_error = reason

    def error(self, reason: str) -> None:
        """Processing failed (engine or publishing error)."""
        with self._lock:
            self._errors += 1
            self._last_error = reason

    def snapshot(self) -> StatsSnapshot:
        """The current figures."""
        now = time.monotonic()
        with self._lock:
            p50, p95 = self._latency.get(50, 95)
            i50, i95 = self._inference.get(50, 95)
            return StatsSnapshot(
                input_rate=self._inputs.rate(now),
                output_rate=self._outputs.rate(now),
                latency_p50=p50,
                latency_p95=p95,
                inference_p50=i50,
                inference_p95=i95,
                published=self._published,
                bad_input=self._bad_input,
                errors=self._errors,
                last_error=self._last_error,
            )
