"""evaluate_dataset: data sets on disk (Cityscapes and ACDC layouts) through a real Segmenter.

The engine is an "oracle" whose prediction is written into the image: the red channel holds
10 x the class to predict, and the engine answers with one-hot scores of that class. So each
case chooses its predictions exactly, while frames still go through file reading, sliding-window
tiling, stitching and the resize to label resolution.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from test.data import layouts
from test.evaluation.test_metrics import (  # noqa: F401 (cityscapes_eval: a fixture)
    _cityscapes_scores,
    _structured_errors,
    cityscapes_eval,
)
from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.data import SegmentationDataset, build_dataset
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.engines.base import Engine
from vltseg_ros.errors import ConfigError, DatasetError
from vltseg_ros.evaluation import ConfusionMatrix
from vltseg_ros.evaluation.dataset_eval import (
    domain_reports,
    evaluate_dataset,
    frame_counts,
)
from vltseg_ros.evaluation.summary_report import summary_dict, summary_markdown
from vltseg_ros.inference.predictor import Segmenter

SIZE = (24, 40)  # (H, W): below the tiny config's 64x64 crop, so the frames are padded
ROAD, SIDEWALK, SKY, CAR = 0, 1, 10, 13


class OracleEngine(Engine):
    """One-hot scores of class round(red / 10), red being the un-normalized input's R."""

    name = "oracle"

    def __init__(self) -> None:
        self.config = load_model_config("tiny")
        self.device = torch.device("cpu")
        self.precision = "fp32"

    @property
    def patch_size(self) -> tuple[int, int]:
        return (8, 8)

    @property
    def description(self) -> str:
        return "oracle"

    def __call__(self, inputs: Tensor) -> Tensor:
        self.check_inputs(inputs)
        norm = self.config.normalization
        red = inputs[:, 0] * norm.std[0] + norm.mean[0]
        classes = torch.round(red / 10).long().clamp(0, self.config.class_set.num_classes - 1)
        one_hot = torch.nn.functional.one_hot(classes, self.config.class_set.num_classes)
        return one_hot.permute(0, 3, 1, 2).float()

    def close(self) -> None:
        pass


@pytest.fixture
def segmenter() -> Segmenter:
    return Segmenter(OracleEngine(), batch_size=2)


def _frame(prediction: np.ndarray, seed: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB image that makes the oracle predict ``prediction``."""
    image = layouts.image_rgb(seed, prediction.shape)
    image[..., 0] = prediction.astype(np.uint8) * 10
    return image


def _write_predictions(dataset: SegmentationDataset, predictions: list[np.ndarray]) -> None:
    for index, (sample, prediction) in enumerate(zip(dataset.samples, predictions, strict=True)):
        layouts.write_image(sample.image, _frame(prediction, index))


def cityscapes_set(root: Path, labels: list[np.ndarray], predictions: list[np.ndarray]):
    """A Cityscapes val split of ``labels`` (train ids) whose frames make the oracle predict
    ``predictions`` (frame order = list order)."""
    frames = {f"aachen_000000_{i:06d}": {"labelTrainIds": ids} for i, ids in enumerate(labels)}
    layouts.cityscapes(root, "val", frames)
    dataset = build_dataset("cityscapes", root, "val")
    _write_predictions(dataset, predictions)
    return dataset


def acdc_set(root: Path, frames: dict[str, list[tuple[np.ndarray, np.ndarray]]]):
    """An ACDC val split: condition -> [(labels, prediction), ...]."""
    for condition, pairs in frames.items():
        for i, (labels, _) in enumerate(pairs):
            layouts.acdc(root, "val", condition, f"{condition}_{i:03d}", labels)
    dataset = build_dataset("acdc", root, "val", conditions=list(frames))
    _write_predictions(dataset, [p for pairs in frames.values() for _, p in pairs])
    return dataset


def random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels with some 255, prediction) over a few classes."""
    labels = rng.choice(np.array([0, 1, 2, 8, 10, 13, 255], np.uint8), SIZE)
    prediction = np.where(rng.random(SIZE) < 0.3, rng.integers(0, 19, SIZE), labels)
    return labels, np.where(prediction == 255, 0, prediction).astype(np.uint8)


def _matrix(pairs: list[tuple[np.ndarray, np.ndarray]]) -> ConfusionMatrix:
    matrix = ConfusionMatrix(19)
    for labels, prediction in pairs:
        matrix.update(prediction, labels)
    return matrix


def known_confusion() -> tuple[np.ndarray, np.ndarray]:
    """Road over car with known errors (IoUs computed by hand in the test below)."""
    labels = np.full(SIZE, ROAD, np.uint8)
    labels[12:] = CAR
    labels[:2] = 255  # 80 ignored pixels: road has 400
    prediction = labels.copy()
    prediction[:2] = SKY  # predictions on ignored pixels count nowhere
    prediction[12:, :10] = ROAD  # 120 car pixels called road
    prediction[2:6, :20] = SIDEWALK  # 80 road pixels called sidewalk
    return labels, prediction


def test_oracle_scores_one(segmenter, tmp_path: Path) -> None:
    pairs = [random_pair(np.random.default_rng(seed)) for seed in range(2)]
    oracle = [(labels, np.where(labels == 255, 0, labels)) for labels, _ in pairs]
    dataset = cityscapes_set(tmp_path, [p[0] for p in oracle], [p[1] for p in oracle])
    matrices = evaluate_dataset(segmenter, dataset, progress=False)
    assert list(matrices) == ["cityscapes"]
    matrix = matrices["cityscapes"]
    assert matrix.miou() == 1.0 and matrix.pixel_accuracy() == 1.0
    assert matrix.pixels == sum(int((labels != 255).sum()) for labels, _ in oracle)


def test_known_confusion_gives_hand_computed_ious(segmenter, tmp_path: Path) -> None:
    labels, prediction = known_confusion()
    dataset = cityscapes_set(tmp_path, [labels], [prediction])
    matrix = evaluate_dataset(segmenter, dataset, progress=False)["cityscapes"]
    iou = matrix.iou()
    assert iou[ROAD] == pytest.approx(320 / (320 + 80 + 120))  # TP 320, FN 80, FP 120
    assert iou[SIDEWALK] == 0.0  # 80 false positives only
    assert iou[CAR] == pytest.approx(360 / 480)  # TP 360, FN 120
    assert math.isnan(iou[SKY])  # predicted on ignored pixels only
    assert np.isnan(iou).sum() == 16
    assert matrix.miou() == pytest.approx((320 / 520 + 0 + 0.75) / 3)
    assert matrix.pixel_accuracy() == pytest.approx((320 + 360) / 880)


def test_acdc_conditions_and_their_sum(segmenter, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = {
        "fog": [random_pair(rng), random_pair(rng)],
        "night": [random_pair(rng)],
        "snow": [random_pair(rng)],
    }
    dataset = acdc_set(tmp_path, frames)
    matrices = evaluate_dataset(segmenter, dataset, progress=False)
    assert list(matrices) == ["acdc", "acdc/fog", "acdc/night", "acdc/snow"]
    for condition, pairs in frames.items():
        expected = _matrix(pairs).matrix
        np.testing.assert_array_equal(matrices[f"acdc/{condition}"].matrix, expected)
    total = sum(matrices[f"acdc/{c}"].matrix for c in frames)
    np.testing.assert_array_equal(matrices["acdc"].matrix, total)
    everything = [pair for pairs in frames.values() for pair in pairs]
    assert matrices["acdc"].miou() == pytest.approx(_matrix(everything).miou())
    assert frame_counts(dataset) == {"acdc": 4, "acdc/fog": 2, "acdc/night": 1, "acdc/snow": 1}

    many = Segmenter(segmenter.engine, inference=segmenter.inference, batch_size=64)
    batched = evaluate_dataset(many, dataset, progress=False)  # all frames in one call
    for domain, matrix in matrices.items():
        np.testing.assert_array_equal(batched[domain].matrix, matrix.matrix)

    limited = evaluate_dataset(segmenter, dataset, limit=1, progress=False)
    np.testing.assert_array_equal(limited["acdc/fog"].matrix, _matrix(frames["fog"][:1]).matrix)
    np.testing.assert_array_equal(limited["acdc/snow"].matrix, matrices["acdc/snow"].matrix)
    assert frame_counts(dataset, limit=1)["acdc"] == 3


def test_agrees_with_cityscapesscripts(
    segmenter,
    cityscapes_eval,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    pairs = []
    for seed in range(2):
        _, target = synthetic_street_scene(48, 96, seed=seed)
        target = target.copy()
        target[:4, :10] = 255
        prediction = _structured_errors(target, seed)
        pairs.append((np.where(prediction == 255, CAR, prediction).astype(np.uint8), target))
    dataset = cityscapes_set(tmp_path / "data", [t for _, t in pairs], [p for p, _ in pairs])
    matrix = evaluate_dataset(segmenter, dataset, progress=False)["cityscapes"]
    folder = tmp_path / "reference"
    folder.mkdir()
    scores, miou = _cityscapes_scores(cityscapes_eval, pairs, folder)
    names = segmenter.class_set.names
    for name, value in zip(names, matrix.iou(), strict=True):
        assert math.isnan(value) == math.isnan(scores[name]), name
        if not math.isnan(value):
            assert abs(value - scores[name]) < 1e-9, name
    assert abs(matrix.miou() - miou) < 1e-9
    assert np.isfinite(matrix.iou()).sum() >= 5 and matrix.miou() < 1.0  # a real test case


def test_reports_and_summary_hold_the_same_numbers(segmenter, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    dataset = acdc_set(tmp_path, {"fog": [known_confusion()], "rain": [random_pair(rng)]})
    matrices = evaluate_dataset(segmenter, dataset, progress=False)
    reports = domain_reports(
        matrices, frame_counts(dataset), segmenter.class_set.names, model="tiny", source="x"
    )
    assert reports["acdc/fog"].source == "acdc/fog (x)" and reports["acdc"].frames == 2
    data = summary_dict(reports)
    assert data["random_weights"] is True and list(data["domains"]) == list(matrices)
    fog = data["domains"]["acdc/fog"]
    assert fog["miou"] == pytest.approx((320 / 520 + 0.75) / 3)
    assert fog["iou"]["car"] == pytest.approx(0.75) and fog["iou"]["sky"] is None
    assert fog["frames"] == 1 and fog["pixels"] == 880 and fog["report"] == "acdc/fog/report.json"
    text = summary_markdown(reports)
    assert "WARNING: no checkpoint" in text
    for domain, entry in data["domains"].items():
        miou, accuracy = 100 * entry["miou"], 100 * entry["pixel_accuracy"]
        row = f"| {domain} | {entry['frames']} | {entry['pixels']} | {miou:.2f} | {accuracy:.2f} |"
        assert row in text
    assert "| car | " in text and "| **mIoU** | " in text
    assert "no checkpoint" not in summary_markdown(
        domain_reports(matrices, {}, segmenter.class_set.names, checkpoint="w.safetensors")
    )


def test_bad_inputs(segmenter, tmp_path: Path) -> None:
    labels = np.full(SIZE, 30, np.uint8)  # not a train id of the model's 19 classes
    dataset = cityscapes_set(tmp_path, [labels], [np.zeros(SIZE, np.uint8)])
    with pytest.raises(DatasetError, match=r"aachen_000000_000000.*values \[30\]"):
        evaluate_dataset(segmenter, dataset, progress=False)
    with pytest.raises(ConfigError, match="limit"):
        evaluate_dataset(segmenter, dataset, limit=0, progress=False)
    transformed = build_dataset("cityscapes", tmp_path, "val", transform=lambda x, y, k: (x, y))
    with pytest.raises(ConfigError, match="without a transform"):
        evaluate_dataset(segmenter, transformed, progress=False)
