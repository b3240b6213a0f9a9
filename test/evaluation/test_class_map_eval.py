"""Evaluation in a class map's output classes agrees with mapping labels and predictions by
hand through its lookup table, and the reports name the map."""

from __future__ import annotations

import numpy as np
import pytest

from test.evaluation.test_dataset_eval import (
    CAR,
    ROAD,
    SIDEWALK,
    SIZE,
    SKY,
    OracleEngine,
    acdc_set,
    cityscapes_set,
    known_confusion,
    random_pair,
)
from vltseg_ros.config.class_map import load_class_map
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.errors import DatasetError
from vltseg_ros.evaluation import ConfusionMatrix
from vltseg_ros.evaluation.dataset_eval import (
    domain_reports,
    frame_counts,
    score_dataset,
)
from vltseg_ros.evaluation.report import markdown_table
from vltseg_ros.evaluation.summary_report import summary_dict, summary_markdown
from vltseg_ros.inference.predictor import Segmenter

CITYSCAPES = load_class_set("cityscapes")


@pytest.fixture
def segmenter() -> Segmenter:
    return Segmenter(OracleEngine(), batch_size=2)


@pytest.fixture(scope="module")
def gaps(tmp_path_factory):
    """ids 1 and 4 (0, 2, 3 unused); only road, sidewalk and car mapped, no default."""
    path = tmp_path_factory.mktemp("maps") / "gaps.yaml"
    path.write_text(
        "classes:\n  - {name: ground, id: 4, members: [road, sidewalk]}\n"
        "  - {name: vehicle, id: 1, members: [car]}\n"
    )
    return load_class_map(path, CITYSCAPES)


def _by_hand(class_map, pairs: list[tuple[np.ndarray, np.ndarray]]) -> ConfusionMatrix:
    """The output-class matrix of (labels, prediction) pairs, both mapped with the LUT."""
    matrix = ConfusionMatrix(class_map.num_classes)
    for labels, prediction in pairs:
        matrix.update(class_map.lut[prediction], class_map.lut[labels])
    return matrix


@pytest.mark.parametrize("name", ["traversability", "gaps"])
def test_mapped_evaluation_equals_mapping_by_hand(segmenter, tmp_path, name, request) -> None:
    class_map = request.getfixturevalue(name)
    rng = np.random.default_rng(3)
    frames = {"fog": [random_pair(rng), known_confusion()], "night": [random_pair(rng)]}
    dataset = acdc_set(tmp_path, frames)
    scores = score_dataset(segmenter, dataset, progress=False, class_map=class_map)
    assert list(scores.matrices) == ["acdc", "acdc/fog", "acdc/night"]
    for condition, pairs in frames.items():
        matrix = scores.matrices[f"acdc/{condition}"]
        expected = _by_hand(class_map, pairs)
        np.testing.assert_array_equal(matrix.matrix, expected.matrix)
        np.testing.assert_array_equal(matrix.iou(), expected.iou())  # NaN where absent
        assert matrix.miou() == expected.miou()
    everything = _by_hand(class_map, [p for pairs in frames.values() for p in pairs])
    np.testing.assert_array_equal(scores.matrices["acdc"].matrix, everything.matrix)
    model = score_dataset(segmenter, dataset, progress=False).matrices["acdc"]
    assert model.num_classes == 19 and everything.miou() != model.miou()
    calibration = scores.calibration["acdc"]
    assert int(calibration.counts.sum()) == everything.pixels  # the mapped labelled pixels


def test_known_confusion_in_output_classes(segmenter, traversability, gaps, tmp_path) -> None:
    labels, prediction = known_confusion()  # road over car; see test_dataset_eval
    dataset = cityscapes_set(tmp_path, [labels], [prediction])
    matrix = score_dataset(segmenter, dataset, progress=False, class_map=traversability)
    iou = matrix.matrices["cityscapes"].iou()
    # traversable: road 400 labelled (320 right + 80 called sidewalk: still traversable);
    # 120 car pixels called road are false positives. obstacle: car 480, 360 right.
    assert iou[0] == 400 / (400 + 120) and iou[1] == 360 / 480 and np.isnan(iou[2])
    matrix = score_dataset(segmenter, dataset, progress=False, class_map=gaps)
    iou = matrix.matrices["cityscapes"].iou()
    assert iou[4] == 400 / 520 and iou[1] == 360 / 480
    assert np.isnan(iou[[0, 2, 3]]).all()  # unused ids: n/a, out of the mean
    assert matrix.matrices["cityscapes"].miou() == pytest.approx((400 / 520 + 0.75) / 2)


def test_unmapped_labels_are_ignored_and_unmapped_predictions_miss(
    segmenter, gaps, tmp_path
) -> None:
    labels = np.full(SIZE, ROAD, np.uint8)
    labels[:, :10] = SKY  # unmapped label: not scored
    prediction = labels.copy()
    prediction[:, 30:] = SKY  # unmapped prediction of a road pixel: a miss (255)
    prediction[:, 20:30] = SIDEWALK  # same output class as road: right
    dataset = cityscapes_set(tmp_path, [labels], [prediction])
    matrix = score_dataset(segmenter, dataset, progress=False, class_map=gaps).matrices
    matrix = matrix["cityscapes"]
    assert matrix.pixels == 24 * 30
    assert matrix.matrix[4, 4] == 24 * 20 and matrix.matrix[4, -1] == 24 * 10
    bad = np.full(SIZE, 30, np.uint8)
    dataset = cityscapes_set(tmp_path / "bad", [bad], [np.full(SIZE, CAR, np.uint8)])
    with pytest.raises(DatasetError, match=r"values \[30\]"):
        score_dataset(segmenter, dataset, progress=False, class_map=gaps)


def test_reports_name_the_class_map(segmenter, traversability, tmp_path) -> None:
    dataset = cityscapes_set(tmp_path, [known_confusion()[0]], [known_confusion()[1]])
    scores = score_dataset(segmenter, dataset, progress=False, class_map=traversability)
    reports = domain_reports(
        scores.matrices,
        frame_counts(dataset),
        traversability.classes.names,
        model="tiny",
        class_map=traversability.describe(),
    )
    report = reports["cityscapes"]
    data = report.to_dict()
    assert data["class_map"] == traversability.describe()
    assert list(data["iou"]) == ["traversable", "obstacle", "sky"]
    assert data["iou"]["traversable"] == 400 / 520
    assert f"| class map | {traversability.describe()} |" in markdown_table(report)
    assert "| traversable | 76.92 | 400 |" in markdown_table(report)
    summary = summary_dict(reports)
    assert summary["class_map"] == traversability.describe()
    assert summary["classes"] == ["traversable", "obstacle", "sky"]
    assert f"class map: {traversability.describe()}" in summary_markdown(reports)
    plain = domain_reports(scores.matrices, {}, traversability.classes.names)
    assert plain["cityscapes"].to_dict()["class_map"] is None
    assert summary_dict(plain)["class_map"] is None
    assert "class map" not in markdown_table(plain["cityscapes"])
