"""Anomaly scores and the calibration temperature, from raw Mask2Former scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vltseg_ros.config.anomaly_methods import ANOMALY_METHODS
from vltseg_ros.config.model_config import Calibration, InferenceConfig
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import scores_to_result
from vltseg_ros.inference.scores import anomaly_score, apply_temperature

# 3 classes x 2 pixels: one a class owns (known), one no query claims (unknown)
RAW = torch.tensor([[[1.0, 0.05]], [[0.0, 0.05]], [[0.0, 0.02]]])


def test_each_method_by_its_formula() -> None:
    probs = apply_temperature(RAW, 1.0)
    expected = {
        "rba": -torch.tanh(RAW).sum(0),
        "max_logit": -RAW.amax(0),
        "max_probability": 1 - probs.amax(0),
        "entropy": -(probs * probs.clamp_min(1e-12).log()).sum(0) / math.log(3),
    }
    for method in ANOMALY_METHODS:
        score = anomaly_score(RAW, method)
        assert score.shape == (1, 2) and score.dtype == torch.float32
        torch.testing.assert_close(score, expected[method].float())
        assert score[0, 1] > score[0, 0], method  # the unclaimed pixel is more anomalous
    assert anomaly_score(RAW, "rba")[0, 0] == pytest.approx(-math.tanh(1.0))
    sharp = anomaly_score(RAW, "max_probability", temperature=0.5)  # p ∝ s^2
    torch.testing.assert_close(sharp, 1 - apply_temperature(RAW, 0.5).amax(0))
    with pytest.raises(ConfigError, match="anomaly method must be one of"):
        anomaly_score(RAW, "odin")


def test_rba_ignores_the_normalization_that_max_probability_sees() -> None:
    # both pixels have the same normalized distribution; only the raw scale differs
    raw = torch.tensor([[[0.9, 0.09]], [[0.1, 0.01]]])
    msp = anomaly_score(raw, "max_probability")
    assert msp[0, 0] == pytest.approx(msp[0, 1].item())
    rba = anomaly_score(raw, "rba")
    assert rba[0, 1] > rba[0, 0] + 0.5  # rejected by all queries: anomalous for RbA


def test_the_result_carries_the_score_and_the_anomalous_share() -> None:
    raw = RAW.repeat(1, 4, 3)  # (3, 4, 6)
    result = scores_to_result(
        raw, (4, 6), summarize=True, anomaly_method="rba", anomaly_threshold=-0.5
    )
    assert result.anomaly is None  # not asked for
    assert result.summary.anomaly_fraction == pytest.approx(0.5)
    result = scores_to_result(
        raw, (8, 12), resize="labels", anomaly_method="rba", return_anomaly=True
    )
    assert result.anomaly.shape == (8, 12) and result.anomaly.dtype == np.float32
    values = sorted({round(float(v), 4) for v in result.anomaly.ravel()})
    assert values == [
        round(-math.tanh(1.0), 4),
        round(-(2 * math.tanh(0.05) + math.tanh(0.02)), 4),
    ]
    assert scores_to_result(raw, (4, 6), summarize=True).summary.anomaly_fraction is None


def test_the_temperature_changes_confidence_but_not_labels_or_rba() -> None:
    raw = torch.rand(5, 6, 7) + 0.01
    plain = scores_to_result(raw, (6, 7), anomaly_method="rba", return_anomaly=True)
    soft = scores_to_result(
        raw, (6, 7), temperature=2.0, anomaly_method="rba", return_anomaly=True
    )
    np.testing.assert_array_equal(plain.labels, soft.labels)
    np.testing.assert_array_equal(plain.anomaly, soft.anomaly)
    assert (soft.confidence < plain.confidence).all()
    expected = raw**0.5 / (raw**0.5).sum(0)
    np.testing.assert_allclose(soft.confidence, expected.amax(0).numpy(), rtol=1e-5)


def test_the_segmenter_takes_its_temperature_from_the_calibration() -> None:
    segmenter = Segmenter.load("tiny", inference=InferenceConfig("whole", whole_size=(64, 64)))
    assert segmenter.temperature == 1.0
    image, _ = synthetic_street_scene(64, 64, seed=1)
    plain = segmenter.predict(image, return_scores=True)
    engine = segmenter.engine
    engine.config = engine.config.replace(calibration=Calibration(temperature=0.5))
    sharp = Segmenter(engine, inference=segmenter.inference)
    assert sharp.temperature == 0.5
    tempered = sharp.predict(image, return_scores=True).scores
    expected = plain.scores.astype(np.float64) ** 2
    np.testing.assert_allclose(tempered, expected / expected.sum(0), atol=1e-5)
    with pytest.raises(ConfigError, match="return_anomaly needs an anomaly_method"):
        segmenter.predict(image, return_anomaly=True)
