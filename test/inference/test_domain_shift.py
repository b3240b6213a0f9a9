"""The domain-shift score and its rolling window (vltseg_ros.inference.domain_shift)."""

from __future__ import annotations

import pytest

from vltseg_ros.config.model_config import Calibration
from vltseg_ros.inference.domain_shift import MIN_ANOMALY_STD, ShiftMonitor, shift_score

REFERENCE = Calibration(
    mean_confidence=0.8,
    mean_confidence_std=0.05,
    anomaly_fraction=0.02,
    anomaly_fraction_std=0.001,  # floored at MIN_ANOMALY_STD
)


def test_the_score_counts_standard_deviations_on_the_bad_side_only() -> None:
    assert shift_score(0.8, 0.02, REFERENCE) == 0.0
    assert shift_score(0.95, 0.0, REFERENCE) == 0.0  # more confident, fewer anomalies: fine
    assert shift_score(0.65, 0.02, REFERENCE) == pytest.approx(3.0)
    assert shift_score(0.8, 0.12, REFERENCE) == pytest.approx(0.10 / MIN_ANOMALY_STD)
    assert shift_score(0.8, 0.12, REFERENCE, compare_anomaly=False) == 0.0
    assert shift_score(0.7, 0.03, REFERENCE) == pytest.approx(2.0)  # confidence: 0.1 / 0.05
    assert shift_score(0.7, 0.12, REFERENCE) == pytest.approx(20.0)  # the larger term


def test_the_window_holds_its_seconds_and_needs_min_frames() -> None:
    monitor = ShiftMonitor(REFERENCE, window=10.0, threshold=3.0, min_frames=3)
    assert monitor.add(0.0, 0.5, 0.02) == pytest.approx(6.0)
    assert not monitor.status().shifted  # one frame is not a shift
    monitor.add(1.0, 0.5, 0.02)
    monitor.add(2.0, 0.5, 0.02)
    status = monitor.status()
    assert status.shifted and status.frames == 3 and status.score == pytest.approx(6.0)
    assert status.message.startswith("possible domain shift: mean confidence 0.50")
    assert "over the last 2 s (3 frames); calibration set: 0.80" in status.message
    for t in range(13, 16):  # good frames; the bad ones leave the window
        monitor.add(float(t), 0.8, 0.02)
    status = monitor.status()
    assert not status.shifted and status.frames == 3 and status.score == 0.0
    assert "possible" not in status.message


def test_a_stamp_going_back_restarts_the_window() -> None:
    monitor = ShiftMonitor(REFERENCE, min_frames=1)
    monitor.add(100.0, 0.3, 0.0)
    monitor.add(5.0, 0.8, 0.02)  # a bag replayed from its start
    status = monitor.status()
    assert status.frames == 1 and not status.shifted


def test_an_empty_window_says_so() -> None:
    status = ShiftMonitor(REFERENCE).status()
    assert (status.shifted, status.frames, status.message) == (
        False,
        0,
        "no frames in the window yet",
    )
