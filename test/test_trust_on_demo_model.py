"""When not to trust a pixel, measured on the shipped demo model (vltseg_ros.demo_model): unseen
objects pasted into held-out scenes, scenes under eight kinds of shift, and calibration cases
(miscalibrated on purpose, and clean). The asserted figures are the ones measured here
(docs/trust.md), with a margin; scenes are 256x512, the model's own input size (seeds >= 300000:
never trained on).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from vltseg_ros.data.corruptions import SHIFT_KINDS, shift_domain
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.unseen_objects import (
    HARD_SCENARIOS,
    paste_hard_unseen_objects,
    paste_unseen_objects,
)
from vltseg_ros.demo_model import DEMO_CHECKPOINT
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.fit_calibration import fit_calibration
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.inference.domain_shift import ShiftMonitor
from vltseg_ros.inference.predictor import Segmenter

SIZE = (256, 512)
SEEDS = range(300000, 300006)


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter.load(checkpoint=DEMO_CHECKPOINT)


def _scenes(seeds=SEEDS) -> list[tuple[np.ndarray, np.ndarray]]:
    return [synthetic_street_scene(*SIZE, seed=seed) for seed in seeds]


def _anomaly_metrics(segmenter, frames) -> dict:
    """Pooled pixel metrics of all four scores (max_probability is reported beside each) on
    (image, uint8 truth) frames."""
    measured = {}
    for method in ("rba", "max_logit", "entropy"):
        scoring = AnomalyScoring(method)
        for image, truth in frames:
            scoring.add(segmenter.predict(image, **scoring.predict_options()), truth)
        measured |= scoring.report().metrics
    return measured


def test_unseen_objects_score_as_anomalous(segmenter) -> None:
    frames = []
    for seed, (image, labels) in zip(SEEDS, _scenes(), strict=True):
        pasted, _, mask = paste_unseen_objects(image, labels, seed=seed)
        frames.append((pasted, mask.astype(np.uint8)))
    measured = {name: m.auroc for name, m in _anomaly_metrics(segmenter, frames).items()}
    # Measured here: RbA 0.999, max logit 0.999, entropy 0.984, max probability 0.980
    # (docs/trust.md).
    assert measured["rba"] >= 0.98
    assert measured["max_logit"] >= 0.98
    assert 0.90 <= measured["max_probability"] <= measured["rba"] - 0.01
    assert 0.90 <= measured["entropy"] <= measured["rba"] - 0.01


def test_hard_unseen_objects_score_as_anomalous(segmenter) -> None:
    """Textured, near-class, small, off-road and crowded objects (two scenes each, seeds the
    bench's tables do not use): the default score meets the goal of issue 24 (pooled AUROC
    >= 0.97, FPR95 <= 15 %) and beats max probability, whose FPR95 stays near 50 %."""
    frames = []
    for i, seed in enumerate(range(600000, 600010)):
        image, labels = synthetic_street_scene(*SIZE, seed=seed)
        scenario = HARD_SCENARIOS[i % len(HARD_SCENARIOS)]
        pasted, _, mask = paste_hard_unseen_objects(image, labels, seed, scenario)
        frames.append((pasted, mask.astype(np.uint8)))
    measured = _anomaly_metrics(segmenter, frames)
    rba, msp = measured["rba"], measured["max_probability"]
    # measured here: RbA 0.988 / FPR95 1.1 %, max logit 0.993 / 2.9 %, max probability and
    # entropy 0.900 / 81 % (docs/trust.md)
    assert rba.auroc >= 0.97 and rba.fpr_at_95_tpr <= 0.15
    assert measured["max_logit"].auroc >= 0.97
    for weak in (msp, measured["entropy"]):  # both 0.900 / 81 % here
        assert weak.auroc < rba.auroc and weak.fpr_at_95_tpr > 2 * rba.fpr_at_95_tpr


def test_the_shift_score_follows_the_damage_a_shift_does(segmenter) -> None:
    clean = [(image, "rgb", labels) for image, labels in _scenes(range(310000, 310008))]
    fit = fit_calibration(segmenter, lambda: clean, source="held-out scenes", progress=False)
    reference = fit.calibration
    assert reference.mean_confidence > 0.95 and reference.anomaly_fraction < 0.005
    assert len(reference.class_fraction) == 19
    options = {
        "summarize": True,
        "anomaly_method": reference.anomaly_method,
        "anomaly_threshold": reference.anomaly_threshold,
    }
    conditions = [("none", 0.0), ("fog", 0.5), ("night", 0.5)]
    conditions += [(kind, 1.0) for kind in SHIFT_KINDS]
    statuses, mious = {}, {}
    for kind, strength in conditions:
        monitor = ShiftMonitor(reference, window=10.0, threshold=3.0)
        matrix = ConfusionMatrix(19)
        for t, seed in enumerate(SEEDS[:4]):
            image, labels = synthetic_street_scene(*SIZE, seed=seed)
            if strength > 0:
                image = shift_domain(image, kind, strength, seed=seed)
            result = segmenter.predict(image, **options)
            matrix.update(result.labels, labels)
            s = result.summary
            monitor.add(float(t), s.mean_confidence, s.anomaly_fraction, s.class_fraction)
        statuses[kind, strength], mious[kind, strength] = monitor.status(), 100 * matrix.miou()
    scores = {key: status.score for key, status in statuses.items()}
    # measured here (docs/trust.md, python -m bench.trust_shift): clean 0.58; full-strength
    # noise 2.9, JPEG 1.6 (mIoU -10, -13); motion blur 3.9, blur 4.5 (-25, -27: poles and signs
    # blurred away); colour cast 15.5, contrast 18.7, fog 0.5 11.7, night 0.5 23.5, fog 22.2,
    # night 28.7 (the nearly black frame called building, sure of it: mostly the class term)
    assert scores["none", 0.0] < 1.0 and not statuses["none", 0.0].shifted
    for key in [("motion_blur", 1.0), ("blur", 1.0), ("fog", 0.5), ("night", 0.5)]:
        assert statuses[key].shifted, statuses[key].message
    night = statuses["night", 1.0]
    assert night.shifted and night.terms.classes > 20 and night.terms.confidence == 0.0
    assert scores["fog", 1.0] > scores["fog", 0.5] > 10 and scores["night", 1.0] > 20
    drops = [mious["none", 0.0] - mious[key] for key in conditions]
    assert spearmanr([scores[key] for key in conditions], drops).statistic >= 0.9


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


def test_a_temperature_below_one_sharpens_a_model_right_almost_everywhere(segmenter) -> None:
    frames = [(image, "rgb", labels) for image, labels in _scenes(range(320100, 320104))]
    fit = fit_calibration(segmenter, lambda: frames, source="clean", progress=False)
    calibration = fit.calibration  # measured here: T 0.58, ECE 0.0035 -> 0.0005
    assert 0.3 < calibration.temperature < 0.9  # sharpened: valid (docs/trust.md)
    assert calibration.ece_after < 0.5 * calibration.ece_before
