"""ECE against hand values and a direct computation; temperature scaling recovers a known
temperature, lowers NLL and ECE of overconfident scores, and T = 1 is today's s / s.sum(0)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from vltseg_ros.config.model_config import Calibration
from vltseg_ros.errors import ConfigError, EvaluationError
from vltseg_ros.evaluation.calibration import (
    CalibrationAccumulator,
    bin_index,
    fit_temperature,
    negative_log_likelihood,
    reliability_diagram,
)
from vltseg_ros.inference.scores import apply_temperature


def _direct_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Guo et al.'s loop: bins (lower, upper], confidence 0 counted in the first bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for b, (lower, upper) in enumerate(itertools.pairwise(edges)):
        in_bin = (confidence > lower) & (confidence <= upper)
        if b == 0:
            in_bin |= confidence == 0.0
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            ece += in_bin.mean() * gap
    return ece


def test_confident_but_half_wrong_gives_ece_one_half():
    accumulator = CalibrationAccumulator()
    correct = np.zeros((4, 4), bool)
    correct[:2] = True
    accumulator.add(np.ones((4, 4), np.float32), correct)
    result = accumulator.result()
    assert result.ece == pytest.approx(0.5)
    assert result.pixels == 16
    assert result.bin_counts[-1] == 16 and result.bin_counts[:-1].sum() == 0
    assert result.bin_accuracy[-1] == 0.5 and result.bin_confidence[-1] == 1.0
    assert np.isnan(result.bin_accuracy[0]) and np.isnan(result.bin_confidence[0])
    np.testing.assert_allclose(result.bin_edges, np.linspace(0, 1, 16))


def test_ece_matches_direct_computation_over_frames_with_valid_masks(rng):
    accumulator = CalibrationAccumulator()
    kept_confidence, kept_correct = [], []
    for _ in range(3):
        confidence = rng.uniform(0.0, 1.0, (30, 40)).astype(np.float32)
        confidence[0, :3] = [0.0, 1.0, 2.0 / 15.0]  # the ends and an edge
        # overconfident below 0.5, underconfident above: one bin would average the two away
        truth = np.where(confidence < 0.5, confidence**2, np.sqrt(confidence))
        correct = rng.uniform(size=(30, 40)) < truth
        valid = rng.uniform(size=(30, 40)) < 0.8
        accumulator.add(confidence, correct, valid)
        kept_confidence.append(confidence[valid].astype(np.float64))
        kept_correct.append(correct[valid])
    confidence, correct = np.concatenate(kept_confidence), np.concatenate(kept_correct)
    result = accumulator.result()
    assert result.ece == pytest.approx(_direct_ece(confidence, correct), abs=1e-12)
    assert result.ece > 0.1
    one_bin = abs(correct.mean() - confidence.mean())  # what a broken binning would give
    assert one_bin == pytest.approx(_direct_ece(confidence, correct, bins=1), abs=1e-12)
    assert result.ece > one_bin + 0.05
    assert result.pixels == confidence.size == result.bin_counts.sum()


def test_bin_rule_is_upper_inclusive_with_zero_in_the_first_bin():
    edges = np.linspace(0.0, 1.0, 6)
    values = np.array([0.0, 1e-9, 0.2, 0.2 + 1e-9, 0.6, 1.0])
    np.testing.assert_array_equal(bin_index(values, edges), [0, 0, 0, 1, 2, 4])


def test_result_to_dict_is_json_ready():
    accumulator = CalibrationAccumulator(bins=4)
    accumulator.add(np.array([[0.9, 0.3]]), np.array([[True, False]]))
    restored = json.loads(json.dumps(accumulator.result().to_dict()))
    assert restored["bin_counts"] == [0, 1, 0, 1]
    assert restored["bin_accuracy"] == [None, 0.0, None, 1.0]
    assert restored["ece"] == pytest.approx(0.5 * 0.3 + 0.5 * 0.1)


def test_accumulator_errors():
    accumulator = CalibrationAccumulator()
    with pytest.raises(EvaluationError, match="no pixel"):
        accumulator.result()
    with pytest.raises(EvaluationError, match=r"outside \[0, 1\]"):
        accumulator.add(np.array([[1.5]]), np.array([[True]]))
    with pytest.raises(EvaluationError, match="NaN"):
        accumulator.add(np.array([[np.nan]]), np.array([[True]]))
    with pytest.raises(EvaluationError, match="bool"):
        accumulator.add(np.array([[0.5]]), np.array([[1]]))
    with pytest.raises(EvaluationError, match="one shape"):
        accumulator.add(np.zeros((2, 2)), np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ConfigError, match="bins"):
        CalibrationAccumulator(bins=0)


def test_reliability_diagram_is_a_png(tmp_path, rng):
    accumulator = CalibrationAccumulator()
    confidence = rng.uniform(0.3, 1.0, (20, 20))
    accumulator.add(confidence, rng.uniform(size=(20, 20)) < confidence)
    path = reliability_diagram(accumulator.result(), tmp_path / "reliability.png", "val")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (500, 500)


def _tempered_samples(temperature: float, n: int = 20_000, classes: int = 6):
    """Log-scores and labels drawn from softmax(log_scores / temperature)."""
    generator = torch.Generator().manual_seed(0)
    log_scores = 3.0 * torch.randn(n, classes, generator=generator, dtype=torch.float64)
    probabilities = torch.softmax(log_scores / temperature, dim=1)
    labels = torch.multinomial(probabilities, 1, generator=generator).squeeze(1)
    return log_scores, labels


def test_fit_temperature_recovers_a_known_temperature():
    log_scores, labels = _tempered_samples(2.5)
    assert fit_temperature(log_scores, labels) == pytest.approx(2.5, rel=0.05)
    assert fit_temperature(log_scores, labels) == fit_temperature(log_scores, labels)


def test_temperature_lowers_nll_and_ece_of_overconfident_scores():
    # raw scores s with the truth drawn from s^(1/3): p = s / s.sum() is overconfident
    log_scores, labels = _tempered_samples(3.0)
    raw = log_scores.exp().T.reshape(6, 100, 200)  # (C, H, W) non-negative raw scores
    fitted = fit_temperature(log_scores.float(), labels)
    assert fitted > 2.0
    before = negative_log_likelihood(log_scores, labels)
    after = negative_log_likelihood(log_scores, labels, fitted)
    assert after < before - 0.1

    truth = labels.reshape(100, 200).numpy()
    eces = []
    for temperature in (1.0, fitted):
        confidence, predicted = apply_temperature(raw, temperature).max(0)
        accumulator = CalibrationAccumulator()
        accumulator.add(confidence.numpy(), predicted.numpy() == truth)
        eces.append(accumulator.result().ece)
    assert eces[0] > 0.2 and eces[1] < 0.03


def test_ignore_index_is_left_out_of_the_fit():
    log_scores, labels = _tempered_samples(2.0, n=4_000)
    noisy = torch.cat([log_scores, 50.0 * torch.randn(500, 6, dtype=torch.float64)])
    padded = torch.cat([labels, torch.full((500,), 255)])
    assert fit_temperature(noisy, padded) == fit_temperature(log_scores, labels)
    assert math.isclose(
        negative_log_likelihood(noisy, padded, 2.0),
        float(torch.nn.functional.cross_entropy(log_scores / 2.0, labels)),
        rel_tol=1e-12,
    )


def test_apply_temperature_one_is_todays_normalization():
    raw = torch.rand(5, 7, 9) * torch.tensor([0.0, 1.0, 3.0, 0.5, 2.0]).view(5, 1, 1)
    probabilities = apply_temperature(raw, 1.0)
    assert probabilities.dtype == torch.float32 and probabilities.shape == raw.shape
    torch.testing.assert_close(probabilities, raw / raw.sum(0), atol=1e-6, rtol=1e-5)
    sharp = apply_temperature(raw.double(), 0.5)  # p ∝ s^2
    assert sharp.dtype == torch.float64
    torch.testing.assert_close(sharp, raw.double() ** 2 / (raw.double() ** 2).sum(0))
    uniform = apply_temperature(torch.zeros(4, 1, 1), 2.0)
    torch.testing.assert_close(uniform, torch.full((4, 1, 1), 0.25))
    torch.testing.assert_close(
        apply_temperature(raw, 1.0 + 1e-9), probabilities, atol=1e-5, rtol=0
    )


def test_temperature_errors():
    log_scores, labels = _tempered_samples(1.0, n=10)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ConfigError, match="temperature"):
            Calibration(temperature=bad).validate()
    with pytest.raises(ConfigError, match="bounds"):
        fit_temperature(log_scores, labels, bounds=(2.0, 1.0))
    with pytest.raises(EvaluationError, match="int64"):
        fit_temperature(log_scores, labels.int())
    with pytest.raises(EvaluationError, match="class ids"):
        fit_temperature(log_scores, torch.full((10,), 6))
    with pytest.raises(EvaluationError, match="no labelled pixel"):
        fit_temperature(log_scores, torch.full((10,), 255))
    with pytest.raises(EvaluationError, match="NaN"):
        fit_temperature(torch.full((10, 6), -math.inf), labels)


def test_bins_agree_with_scikit_learns_calibration_curve():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.05, 1.0, (64, 64))  # continuous: no value on a bin edge
    correct = rng.random((64, 64)) < confidence**2  # overconfident
    accumulator = CalibrationAccumulator(bins=15)
    accumulator.add(confidence, correct, None)
    result = accumulator.result()
    accuracy, mean_confidence = calibration_curve(
        correct.ravel(), confidence.ravel(), n_bins=15, strategy="uniform"
    )
    filled = result.bin_counts > 0
    np.testing.assert_allclose(result.bin_accuracy[filled], accuracy, rtol=1e-12)
    np.testing.assert_allclose(result.bin_confidence[filled], mean_confidence, rtol=1e-12)
