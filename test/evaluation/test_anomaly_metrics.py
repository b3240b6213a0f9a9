"""Pixel anomaly metrics agree with scikit-learn on the non-void pixels; the sampling cap keeps
them close to the exact values, deterministically."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from vltseg_ros.errors import ConfigError, EvaluationError
from vltseg_ros.evaluation.anomaly import AnomalyAccumulator, AnomalyMetrics, fpr_at_tpr


def _frames(rng: np.random.Generator, count: int = 3, shape=(40, 50)):
    """(scores, truth) frames: anomalies (1) score higher on average, 255 void pixels whose
    scores would change every metric if they were counted."""
    frames = []
    for _ in range(count):
        truth = rng.choice(np.array([0, 1, 255], np.uint8), size=shape, p=[0.7, 0.1, 0.2])
        scores = rng.normal(size=shape) + 1.5 * (truth == 1)
        scores[truth == 255] = 10.0  # void: most anomalous of all, if it leaked in
        frames.append((scores.astype(np.float32), truth))
    return frames


def _pooled(frames):
    scores = np.concatenate([s[t != 255] for s, t in frames])
    labels = np.concatenate([t[t != 255] == 1 for _, t in frames])
    return scores, labels


def test_metrics_equal_sklearn_on_non_void_pixels(rng):
    frames = _frames(rng)
    accumulator = AnomalyAccumulator()
    for scores, truth in frames:
        accumulator.add(scores, truth)
    result = accumulator.result()

    scores, labels = _pooled(frames)
    fpr, tpr, _ = roc_curve(labels, scores)
    assert result.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result.average_precision == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert result.fpr_at_95_tpr == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    assert 0.0 < result.fpr_at_95_tpr < 1.0 and 0.8 < result.auroc < 0.9  # d' = 1.5
    assert result.pixels == result.sampled_pixels == labels.size
    assert result.anomaly_pixels == int(labels.sum())


def test_other_truth_values_are_void_and_int_scores_work():
    truth = np.array([[0, 1, 7], [0, 1, 255]], np.uint8)
    scores = np.array([[1, 3, 100], [2, 4, -100]], np.int64)
    accumulator = AnomalyAccumulator()
    accumulator.add(scores, truth)
    result = accumulator.result()
    assert (result.auroc, result.average_precision, result.fpr_at_95_tpr) == (1.0, 1.0, 0.0)
    assert (result.pixels, result.anomaly_pixels) == (4, 2)


def test_fpr95_takes_the_first_threshold_reaching_exactly_95_percent():
    # 20 anomalies: the 19th highest score gives TPR = 0.95 exactly, with 1 of 10 normal pixels
    # above it; RbA's strict "> 0.95" would take the next threshold (FPR 0.5) instead.
    anomaly = np.concatenate([np.linspace(10, 5, 19), [0.0]])
    normal = np.array([7.0, *np.linspace(-1, -5, 4), *np.linspace(0.5, 0.1, 5)])
    scores = np.concatenate([anomaly, normal]).reshape(1, -1)
    truth = np.concatenate([np.ones(20), np.zeros(10)]).astype(np.uint8).reshape(1, -1)
    accumulator = AnomalyAccumulator()
    accumulator.add(scores, truth)
    assert accumulator.result().fpr_at_95_tpr == pytest.approx(0.1)
    fpr, tpr, _ = roc_curve(truth.ravel(), scores.ravel())
    assert fpr[np.argmax(tpr > 0.95)] == pytest.approx(0.6)  # RbA's rule, for contrast
    assert fpr_at_tpr(fpr, tpr, 1.0) == fpr[np.argmax(tpr >= 1.0)]


def test_sampling_cap_is_close_to_exact_and_deterministic(rng):
    frames = _frames(rng, count=6, shape=(100, 100))  # about 48 000 non-void pixels
    exact = AnomalyAccumulator()
    for scores, truth in frames:
        exact.add(scores, truth)
    exact_result = exact.result()

    def capped(seed: int) -> AnomalyMetrics:
        accumulator = AnomalyAccumulator(max_pixels=10_000, seed=seed)
        for scores, truth in frames:
            accumulator.add(scores, truth)
        return accumulator.result()

    first = capped(0)
    assert first == capped(0)  # same frames, same seed: same sample
    assert first != capped(1)
    assert first.sampled_pixels == 10_000
    assert first.pixels == exact_result.pixels
    assert first.anomaly_pixels == exact_result.anomaly_pixels
    assert first.auroc == pytest.approx(exact_result.auroc, abs=0.01)
    assert first.average_precision == pytest.approx(exact_result.average_precision, abs=0.02)
    assert first.fpr_at_95_tpr == pytest.approx(exact_result.fpr_at_95_tpr, abs=0.03)


def test_sample_is_uniform_over_frames(rng):
    # frame 0 holds only normal pixels, frame 1 only anomalies: the kept share of anomalies
    # is their share of all pixels (a biased sample, e.g. the last frames, would miss it)
    accumulator = AnomalyAccumulator(max_pixels=2_000, seed=3)
    accumulator.add(rng.normal(size=(100, 60)), np.zeros((100, 60), np.uint8))
    accumulator.add(rng.normal(size=(100, 20)) + 2, np.ones((100, 20), np.uint8))
    accumulator.result()
    _, _, labels = accumulator._sample()
    assert labels.size == 2_000
    assert labels.mean() == pytest.approx(0.25, abs=0.03)


def test_to_dict_is_json_ready(rng):
    accumulator = AnomalyAccumulator()
    for scores, truth in _frames(rng, count=1):
        accumulator.add(scores, truth)
    result = accumulator.result()
    restored = json.loads(json.dumps(result.to_dict()))
    assert restored == {
        "auroc": result.auroc,
        "average_precision": result.average_precision,
        "fpr_at_95_tpr": result.fpr_at_95_tpr,
        "pixels": result.pixels,
        "anomaly_pixels": result.anomaly_pixels,
        "sampled_pixels": result.sampled_pixels,
    }


def test_errors():
    accumulator = AnomalyAccumulator()
    accumulator.add(np.zeros((2, 2)), np.array([[0, 0], [255, 0]], np.uint8))
    with pytest.raises(EvaluationError, match=r"no anomaly \(1\) pixel"):
        accumulator.result()
    only_anomalies = AnomalyAccumulator()
    only_anomalies.add(np.zeros((1, 2)), np.ones((1, 2), np.uint8))
    with pytest.raises(EvaluationError, match=r"no in-distribution \(0\) pixel"):
        only_anomalies.result()
    with pytest.raises(EvaluationError, match="same size"):
        accumulator.add(np.zeros((2, 3)), np.zeros((2, 2), np.uint8))
    with pytest.raises(EvaluationError, match="integer"):
        accumulator.add(np.zeros((2, 2)), np.zeros((2, 2), np.float32))
    with pytest.raises(EvaluationError, match="NaN"):
        accumulator.add(np.full((2, 2), np.nan), np.zeros((2, 2), np.uint8))
    accumulator.add(np.full((1, 1), np.nan), np.full((1, 1), 255, np.uint8))  # void NaN: fine
    with pytest.raises(ConfigError, match="max_pixels"):
        AnomalyAccumulator(max_pixels=0)
