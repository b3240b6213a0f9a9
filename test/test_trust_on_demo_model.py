"""When not to trust a pixel, measured on the shipped demo model (vltseg_ros.demo_model): unseen
objects pasted into held-out scenes, darkened and fogged scenes, and a calibration case that is
miscalibrated on purpose. The asserted figures are the ones measured here (docs/trust.md), with
a margin; scenes are 256x512, the model's own input size (seeds >= 300000: never trained on).
"""

from __future__ import annotations

import numpy as np
import pytest

from vltseg_ros.data.scenes import paste_unseen_objects, shift_domain, synthetic_street_scene
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.fit_calibration import fit_calibration
from vltseg_ros.inference.domain_shift import ShiftMonitor
from vltseg_ros.inference.predictor import Segmenter

SIZE = (256, 512)
SEEDS = range(300000, 300006)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter.load(checkpoint=DEMO_CHECKPOINT)


def _scenes(seeds=SEEDS) -> list[tuple[np.ndarray, np.ndarray]]:
    return [synthetic_street_scene(*SIZE, seed=seed) for seed in seeds]


def test_unseen_objects_score_as_anomalous(segmenter) -> None:
    frames = []
    for seed, (image, labels) in zip(SEEDS, _scenes(), strict=True):
        pasted, _, mask = paste_unseen_objects(image, labels, seed=seed)
        frames.append((pasted, mask.astype(np.uint8)))
    measured = {}
    for method in ("rba", "max_logit"):
        scoring = AnomalyScoring(method)
        for image, truth in frames:
            scoring.add(segmenter.predict(image, **scoring.predict_options()), truth)
        measured |= {name: m.auroc for name, m in scoring.report().metrics.items()}
    # Measured here: RbA 0.998, max logit 0.999, max probability 0.966 (docs/trust.md).
    assert measured["rba"] >= 0.97
    assert measured["max_logit"] >= 0.97
    assert 0.90 <= measured["max_probability"] <= measured["rba"] - 0.02


def test_darkened_and_fogged_scenes_raise_the_shift_score(segmenter) -> None:
    clean = [(image, "rgb", labels) for image, labels in _scenes(range(310000, 310004))]
    fit = fit_calibration(segmenter, lambda: clean, source="held-out scenes", progress=False)
    reference = fit.calibration
    assert reference.mean_confidence > 0.95 and reference.anomaly_fraction < 0.005
    options = {"summarize": True, "anomaly_method": "rba", "anomaly_threshold": -0.5}
    variants = {
        "clean": lambda image, seed: image,
        "night": lambda image, seed: shift_domain(image, "night", 0.5, seed=seed),
        "fog": lambda image, seed: shift_domain(image, "fog", 0.5),
    }
    scores = {}
    for name, change in variants.items():
        monitor = ShiftMonitor(reference, window=10.0, threshold=3.0)
        for t, seed in enumerate(SEEDS[:4]):
            image, _ = synthetic_street_scene(*SIZE, seed=seed)
            summary = segmenter.predict(change(image, seed), **options).summary
            monitor.add(float(t), summary.mean_confidence, summary.anomaly_fraction)
        status = monitor.status()
        scores[name] = status.score
        assert status.shifted == (name != "clean"), status.message
    # measured here: clean 0.04, night 21 (anomalous pixels 10.7 %), fog 169 (84 %); at night
    # strength 1.0 the toy model calls the whole frame building, sure of it: undetected
    # (docs/trust.md)
    assert scores["clean"] < 1.0 and scores["night"] > 10.0 and scores["fog"] > 50.0


def test_temperature_scaling_lowers_ece_on_noisy_labels(segmenter) -> None:
    # The model is ~99 % sure; with 20 % of the labels replaced by another class it is right
    # only ~80 % of the time: overconfident on purpose.
    rng = np.random.default_rng(0)
    frames = []
    for image, labels in _scenes(range(320000, 320004)):
        noisy = labels.copy()
        flip = rng.random(labels.shape) < 0.2
        noisy[flip] = (labels[flip] + rng.integers(1, 19, int(flip.sum()))) % 19
        frames.append((image, "rgb", noisy.astype(np.uint8)))
    fit = fit_calibration(segmenter, lambda: frames, source="noisy", progress=False)
    calibration = fit.calibration  # measured here: T 2.45, ECE 0.196 -> 0.020
    assert calibration.temperature > 1.5  # softened
    assert calibration.ece_before > 0.15
    assert calibration.ece_after < 0.5 * calibration.ece_before
