"""The domain-shift score and its rolling window (vltseg_ros.inference.domain_shift)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vltseg_ros.config.model_config import Calibration
from vltseg_ros.config.typed_yaml import build_dataclass
from vltseg_ros.inference.domain_shift import (
    MIN_ANOMALY_SHARE,
    MIN_ANOMALY_STD,
    MIN_CLASS_SHARE,
    MIN_CONFIDENCE_STD,
    MIN_LOG_UNCERTAINTY_SPREAD,
    MIN_UNCERTAINTY,
    ShiftMonitor,
    shift_score,
    shift_terms,
)

REFERENCE = Calibration(
    mean_confidence=0.99,
    mean_confidence_std=0.001,
    anomaly_fraction=0.01,
    anomaly_fraction_std=0.001,
    class_fraction=(0.5, 0.3, 0.2, 0.0),
)
SAME = np.array([0.5, 0.3, 0.2, 0.0])


def test_each_term_counts_e_folds_on_the_bad_side_only() -> None:
    same = shift_terms(0.99, 0.01, REFERENCE, class_fraction=SAME)
    assert (same.confidence, same.anomaly, same.classes, same.score) == (0.0, 0.0, 0.0, 0.0)
    # more confident, fewer anomalies, one class commoner: all fine
    better = shift_terms(0.999, 0.0, REFERENCE, class_fraction=np.array([0.6, 0.3, 0.1, 0.0]))
    assert (better.confidence, better.anomaly) == (0.0, 0.0)
    assert better.classes == pytest.approx(math.log((0.2 + 1e-3) / (0.1 + 1e-3)))
    # 10 times as uncertain: ln 10 (almost: the 1e-4 added to both) in spreads of the
    # log-uncertainty: 0.001 / 0.0101 = 0.1, floored at 0.5
    terms = shift_terms(0.9, 0.01, REFERENCE, class_fraction=SAME)
    log_ratio = math.log((0.1 + MIN_UNCERTAINTY) / (0.01 + MIN_UNCERTAINTY))
    assert MIN_LOG_UNCERTAINTY_SPREAD == 0.5
    assert terms.confidence == pytest.approx(log_ratio / 0.5) and terms.confidence > 4.5
    assert terms.anomaly == 0.0 and terms.classes == 0.0 and terms.score == terms.confidence
    # calibration frames whose confidence varied more: their own spread, 0.02 / 0.0101
    varied = Calibration(mean_confidence=0.99, mean_confidence_std=0.02, class_fraction=(1.0,))
    spread = 0.02 / (0.01 + MIN_UNCERTAINTY)
    assert shift_terms(0.9, 0.0, varied).confidence == pytest.approx(log_ratio / spread)
    terms = shift_terms(0.99, 0.2, REFERENCE, class_fraction=SAME)
    assert terms.anomaly == pytest.approx(math.log(0.22 / 0.03))
    assert MIN_ANOMALY_SHARE == 0.02
    # "everything is building": class 2 gone (ln 201), the others commoner or still absent
    gone = np.array([0.7, 0.3, 0.0, 0.0])
    terms = shift_terms(0.99, 0.01, REFERENCE, class_fraction=gone)
    assert terms.classes == pytest.approx(math.log((0.2 + MIN_CLASS_SHARE) / MIN_CLASS_SHARE))
    # confidence and anomaly both say "unsure": the larger counts, plus the classes
    both = shift_terms(0.9, 0.2, REFERENCE, class_fraction=gone)
    assert both.score == pytest.approx(2 * math.log(0.1001 / 0.0101) + math.log(201.0))
    anomalous = shift_terms(0.98, 0.5, REFERENCE, class_fraction=gone)
    assert anomalous.anomaly > anomalous.confidence > 0
    assert anomalous.score == pytest.approx(math.log(0.52 / 0.03) + math.log(201.0))
    assert shift_score(0.9, 0.2, REFERENCE, class_fraction=gone) == pytest.approx(both.score)


def test_terms_left_out_when_they_do_not_compare() -> None:
    gone = np.array([0.7, 0.3, 0.0, 0.0])
    assert shift_terms(0.99, 0.5, REFERENCE, compare_anomaly=False).anomaly == 0.0
    assert shift_terms(0.99, 0.01, REFERENCE).classes == 0.0  # no histogram given
    assert shift_terms(0.99, 0.01, REFERENCE, class_fraction=gone[:3]).classes == 0.0
    old = Calibration(mean_confidence=0.99, anomaly_fraction=0.01)  # no class histogram
    assert shift_terms(0.99, 0.01, old, class_fraction=gone).classes == 0.0


def test_without_a_class_term_the_score_counts_standard_deviations() -> None:
    old = Calibration(  # made before the class histogram was stored
        mean_confidence=0.8,
        mean_confidence_std=0.05,
        anomaly_fraction=0.02,
        anomaly_fraction_std=0.001,  # floored at MIN_ANOMALY_STD
    )
    assert shift_score(0.8, 0.02, old) == 0.0
    assert shift_score(0.95, 0.0, old) == 0.0  # more confident, fewer anomalies: fine
    assert shift_score(0.65, 0.02, old) == pytest.approx(3.0)
    assert shift_score(0.8, 0.12, old) == pytest.approx(0.10 / MIN_ANOMALY_STD)
    assert shift_score(0.8, 0.12, old, compare_anomaly=False) == 0.0
    assert shift_score(0.7, 0.03, old) == pytest.approx(2.0)  # confidence: 0.1 / 0.05
    assert shift_score(0.7, 0.12, old) == pytest.approx(20.0)  # the larger term
    assert MIN_CONFIDENCE_STD == 0.02
    assert shift_score(0.7, 0.0, Calibration(mean_confidence=0.8)) == pytest.approx(5.0)
    # a calibration with a histogram, compared without one (a class map merged the classes)
    terms = shift_terms(0.9, 0.2, REFERENCE, class_fraction=SAME, compare_classes=False)
    assert terms.confidence == pytest.approx(0.09 / MIN_CONFIDENCE_STD)
    assert terms.anomaly == pytest.approx(0.19 / MIN_ANOMALY_STD) and terms.classes == 0.0


def test_the_window_compares_its_mean_histogram() -> None:
    monitor = ShiftMonitor(REFERENCE, min_frames=2)
    # each frame lacks a class, the two together have the reference's shares
    first = monitor.add(0.0, 0.99, 0.01, np.array([0.6, 0.4, 0.0, 0.0]))
    second = monitor.add(1.0, 0.99, 0.01, np.array([0.4, 0.2, 0.4, 0.0]))
    assert first == pytest.approx(math.log(0.201 / 0.001))
    assert second == pytest.approx(math.log(0.301 / 0.201) + math.log(0.501 / 0.401))
    status = monitor.status()
    assert status.score == pytest.approx(0.0, abs=1e-12) and not status.shifted
    assert status.terms is not None and status.terms.classes == pytest.approx(0.0, abs=1e-12)
    assert status.message.endswith("shift score 0.0 (confidence 0.0, anomalies 0.0, classes 0.0)")


def test_the_window_holds_its_seconds_and_needs_min_frames() -> None:
    monitor = ShiftMonitor(REFERENCE, window=10.0, threshold=3.0, min_frames=3)
    night = np.array([0.0, 1.0, 0.0, 0.0])  # one class everywhere, sure of it
    expected = math.log(0.501 / 0.001) + math.log(0.201 / 0.001)
    assert monitor.add(0.0, 0.999, 0.01, night) == pytest.approx(expected)
    assert not monitor.status().shifted  # one frame is not a shift
    monitor.add(1.0, 0.999, 0.01, night)
    monitor.add(2.0, 0.999, 0.01, night)
    status = monitor.status()
    assert status.shifted and status.frames == 3 and status.score == pytest.approx(expected)
    assert status.message.startswith("possible domain shift: mean confidence 1.00")
    assert "over the last 2 s (3 frames); calibration set: 0.99, 1.0 %" in status.message
    assert "(confidence 0.0, anomalies 0.0, classes 11.5) >= 3" in status.message
    for t in range(13, 16):  # good frames; the bad ones leave the window
        monitor.add(float(t), 0.99, 0.01, SAME)
    status = monitor.status()
    assert not status.shifted and status.frames == 3
    assert status.score == pytest.approx(0.0, abs=1e-9)
    assert "possible" not in status.message


def test_an_old_calibration_loads_and_leaves_the_class_term_out() -> None:
    stored = {"temperature": 1.2, "mean_confidence": 0.99, "anomaly_fraction": 0.01}
    old = build_dataclass(Calibration, stored, "calibration")  # as read from a checkpoint
    old.validate()
    assert old.class_fraction == ()
    monitor = ShiftMonitor(old, min_frames=1)
    assert not monitor.compares_classes
    assert monitor.add(0.0, 0.999, 0.01, np.array([0.0, 1.0, 0.0, 0.0])) == 0.0  # unseen
    assert monitor.status().message.endswith("classes off)")
    assert monitor.add(1.0, 0.9, 0.01) == pytest.approx(0.09 / MIN_CONFIDENCE_STD)
    merged = ShiftMonitor(REFERENCE, compare_classes=False)  # a class map merged the classes
    assert not merged.compares_classes
    assert merged.add(0.0, 0.9, 0.01, SAME) == pytest.approx(0.09 / MIN_CONFIDENCE_STD)
    with pytest.raises(ValueError, match="class_fraction"):
        Calibration(class_fraction=(0.5, 1.5)).validate()


def test_a_stamp_going_back_restarts_the_window() -> None:
    monitor = ShiftMonitor(REFERENCE, min_frames=1)
    monitor.add(100.0, 0.3, 0.0)
    monitor.add(5.0, 0.99, 0.01)  # a bag replayed from its start
    status = monitor.status()
    assert status.frames == 1 and not status.shifted


def test_an_empty_window_says_so() -> None:
    status = ShiftMonitor(REFERENCE).status()
    assert (status.shifted, status.frames, status.message, status.terms) == (
        False,
        0,
        "no frames in the window yet",
        None,
    )


def test_calibrate_stores_the_class_histogram_the_monitor_compares() -> None:
    from vltseg_ros.data.corruptions import shift_domain
    from vltseg_ros.data.scenes import synthetic_street_scene
    from vltseg_ros.demo_model import DEMO_CHECKPOINT
    from vltseg_ros.evaluation.fit_calibration import fit_calibration
    from vltseg_ros.inference.predictor import Segmenter

    segmenter = Segmenter.load(checkpoint=DEMO_CHECKPOINT)
    scenes = [synthetic_street_scene(128, 256, seed=seed) for seed in (340000, 340001)]
    frames = [(image, "rgb", labels) for image, labels in scenes]
    reference = fit_calibration(segmenter, lambda: frames, source="t", progress=False).calibration
    predicted = [segmenter.predict(image).labels for image, _ in scenes]
    counts = sum(np.bincount(p.ravel(), minlength=256)[:19] / p.size for p in predicted) / 2
    assert len(reference.class_fraction) == 19
    np.testing.assert_allclose(reference.class_fraction, counts, atol=1e-9)
    assert sum(reference.class_fraction) == pytest.approx(1.0)
    options = {
        "summarize": True,
        "anomaly_method": reference.anomaly_method,
        "anomaly_threshold": reference.anomaly_threshold,
    }
    for name, change in (("clean", None), ("night", "night")):
        monitor = ShiftMonitor(reference, min_frames=2)
        for t, (image, _) in enumerate(scenes):
            shifted = image if change is None else shift_domain(image, change, 1.0, seed=t)
            summary = segmenter.predict(shifted, **options).summary
            monitor.add(
                float(t), summary.mean_confidence, summary.anomaly_fraction, summary.class_fraction
            )
        status = monitor.status()
        if name == "clean":  # the calibration frames themselves
            assert status.score < 0.5 and not status.shifted, status.message
        else:  # sure of itself, no anomalies: only the class term sees it
            assert status.terms.classes > 10 and status.shifted, status.message
