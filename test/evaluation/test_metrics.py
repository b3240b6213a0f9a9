"""ConfusionMatrix: hand-built cases, and agreement with cityscapesscripts' pixel evaluation."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from test.conftest import shared_frame
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.evaluation import ConfusionMatrix, EvaluationReport, markdown_table, write_report

CITYSCAPES = load_class_set("cityscapes")


def test_two_class_case_by_hand() -> None:
    target = np.array([[0, 0], [1, 1]], np.uint8)
    prediction = np.array([[0, 1], [1, 1]], np.uint8)
    cm = ConfusionMatrix(2)
    cm.update(prediction, target)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0]]
    assert cm.matrix.dtype == np.int64 and cm.matrix.shape == (2, 3)
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 1, FN 0 -> 2/3
    np.testing.assert_allclose(cm.iou(), [1 / 2, 2 / 3])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert cm.pixel_accuracy() == pytest.approx(3 / 4)


def test_ignored_targets_are_skipped() -> None:
    target = np.array([[0, 255, 255], [1, 1, 255]], np.uint8)
    prediction = np.array([[0, 1, 0], [1, 0, 255]], np.uint8)
    cm = ConfusionMatrix(2)
    cm.update(prediction, target)
    assert cm.pixels == 3  # the three 255 targets count nowhere, whatever was predicted
    assert cm.matrix.tolist() == [[1, 0, 0], [1, 1, 0]]
    np.testing.assert_allclose(cm.iou(), [1 / 2, 1 / 2])


def test_unlabeled_predictions_are_misses_of_the_target_class_only() -> None:
    target = np.array([[0, 0, 0, 1]], np.uint8)
    prediction = np.array([[0, 255, 200, 1]], np.uint8)  # 255 and 200 (>= C): unlabeled
    cm = ConfusionMatrix(3)
    cm.update(prediction, target)
    assert cm.matrix[:, -1].tolist() == [2, 0, 0]
    iou = cm.iou()
    assert iou[0] == pytest.approx(1 / 3)  # TP 1, FN 2 (unlabeled), FP 0
    assert iou[1] == 1.0  # no false positive from the unlabeled pixels
    assert math.isnan(iou[2])  # class 2 never occurs
    assert cm.miou() == pytest.approx((1 / 3 + 1) / 2)
    assert cm.pixel_accuracy() == pytest.approx(2 / 4)


def test_class_only_predicted_has_zero_iou_and_counts_in_miou() -> None:
    cm = ConfusionMatrix(3)
    cm.update(np.array([[2, 0]], np.uint8), np.array([[0, 0]], np.uint8))
    iou = cm.iou()
    assert iou[0] == 0.5 and iou[2] == 0.0 and math.isnan(iou[1])
    assert cm.miou() == pytest.approx(0.25)


def test_empty_matrix_gives_nan_without_warnings() -> None:
    cm = ConfusionMatrix(4)
    with np.errstate(all="raise"):
        assert np.isnan(cm.iou()).all()
        assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())


def test_merge_equals_one_matrix_over_all_frames(rng: np.random.Generator) -> None:
    frames = [
        (rng.integers(0, 6, (20, 30), dtype=np.uint8), rng.integers(0, 5, (20, 30), np.uint8))
        for _ in range(3)
    ]
    whole, parts = ConfusionMatrix(5), []
    for prediction, target in frames:
        whole.update(prediction, target)
        part = ConfusionMatrix(5)
        part.update(prediction, target)
        parts.append(part)
    merged = ConfusionMatrix(5)
    for part in parts:
        merged.merge(part)
    np.testing.assert_array_equal(merged.matrix, whole.matrix)
    with pytest.raises(ValueError, match="cannot merge a 4-class"):
        merged.merge(ConfusionMatrix(4))


def test_bad_inputs_raise_value_errors_that_say_what_is_wrong() -> None:
    cm = ConfusionMatrix(19)
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        cm.update(np.zeros((4, 5), np.uint8), np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match=r"values \[19, 33\].*labelIds"):
        cm.update(np.zeros((1, 3), np.uint8), np.array([[0, 19, 33]], np.uint8))
    with pytest.raises(ValueError, match="2-D integer"):
        cm.update(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="ignore_index 3 is a class id"):
        ConfusionMatrix(5, ignore_index=3)
    assert cm.pixels == 0  # nothing was added by the failed updates


# --- agreement with cityscapesscripts ------------------------------------------------------


@pytest.fixture(scope="module")
def cityscapes_eval(tmp_path_factory: pytest.TempPathFactory):
    """cityscapesscripts' pixel-level evaluation module and a private copy of its args.

    Traps handled: its env vars are read at import time (pointed at a temp dir so nothing is
    read or written elsewhere; the export dir must exist); the instance-level score and pixel
    accuracy call np.in1d (removed in numpy 2.4) and are switched off; JSON export and
    printing are off.
    """
    root = tmp_path_factory.mktemp("cityscapes")
    (root / "export").mkdir()  # it must exist when CITYSCAPES_EXPORT_DIR is set
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CITYSCAPES_DATASET", str(root))
        patch.setenv("CITYSCAPES_RESULTS", str(root / "results"))
        patch.setenv("CITYSCAPES_EXPORT_DIR", str(root / "export"))
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as module
        from cityscapesscripts.helpers.labels import labels
    args = copy.copy(module.args)
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    # trainId -> labelId. trainId 255 maps to many labels (the dict's last is the license
    # plate, id -1, which the evaluation does not know): write 0 "unlabeled" instead.
    to_label_id = np.zeros(256, np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255 and label.id >= 0:
            to_label_id[label.trainId] = label.id
    return module, args, to_label_id


def _cityscapes_scores(
    cityscapes_eval, pairs: list[tuple[np.ndarray, np.ndarray]], folder: Path
) -> tuple[dict[str, float], float]:
    """Per-class IoU and mIoU of cityscapesscripts for (prediction, target) trainId maps."""
    module, args, to_label_id = cityscapes_eval
    predictions, targets = [], []
    for index, (prediction, target) in enumerate(pairs):
        for kind, array, names in (
            ("pred", prediction, predictions),
            ("gt", target, targets),
        ):
            path = folder / f"{index}_{kind}_labelIds.png"
            Image.fromarray(to_label_id[array]).save(path)
            names.append(str(path))
    result = module.evaluateImgLists(predictions, targets, copy.copy(args))
    return result["classScores"], result["averageScoreClasses"]


def _assert_agrees(cityscapes_eval, pairs, folder: Path) -> ConfusionMatrix:
    cm = ConfusionMatrix(CITYSCAPES.num_classes)
    for prediction, target in pairs:
        cm.update(prediction, target)
    scores, miou = _cityscapes_scores(cityscapes_eval, pairs, folder)
    ours = cm.iou()
    for name, value in zip(CITYSCAPES.names, ours, strict=True):
        reference = scores[name]
        assert math.isnan(value) == math.isnan(reference), name
        if not math.isnan(value):
            assert abs(value - reference) < 1e-9, (name, value, reference)
    assert abs(cm.miou() - miou) < 1e-9
    return cm


def _structured_errors(target: np.ndarray, seed: int) -> np.ndarray:
    """A prediction with known kinds of error: relabelled classes, a shifted band, an
    unlabeled (255) block, and classes predicted on ignored target pixels."""
    ids = {name: i for i, name in enumerate(CITYSCAPES.names)}
    prediction = target.copy()
    height, width = target.shape
    band = slice(height // 2, height // 2 + height // 8)
    prediction[band] = np.roll(target[band], 7 + seed, axis=1)  # boundary errors
    prediction[prediction == ids["car"]] = ids["road"]  # one class relabelled as another
    top = prediction[: height // 3]
    top[top == ids["sky"]] = ids["building"]  # another one, in part of the image
    prediction[-height // 6 :, : width // 5] = 255  # below the confidence threshold
    prediction[target == 255] = ids["terrain"]  # predictions on ignored pixels: no effect
    return prediction


def test_agrees_with_cityscapesscripts_on_synthetic_scenes(cityscapes_eval, tmp_path) -> None:
    pairs = []
    for seed in range(3):
        _, target = synthetic_street_scene(96, 192, seed=seed)
        target = target.copy()
        target[:6, :20] = 255  # some ignored ground truth
        pairs.append((_structured_errors(target, seed), target))
    cm = _assert_agrees(cityscapes_eval, pairs, tmp_path)
    iou = cm.iou()
    assert iou[CITYSCAPES.names.index("car")] == 0.0  # every car pixel was called road
    assert math.isnan(iou[CITYSCAPES.names.index("terrain")])  # predicted on ignored only


def test_agrees_with_cityscapesscripts_on_a_real_frame(cityscapes_eval, tmp_path) -> None:
    path = shared_frame("cityscapes_frankfurt_000001_055709_gtFine_labelTrainIds.png")
    target = np.array(Image.open(path), dtype=np.uint8)
    assert target.shape == (1024, 2048) and (target == 255).any()
    prediction = _structured_errors(target, seed=0)
    _assert_agrees(cityscapes_eval, [(prediction, target)], tmp_path)


# --- reports ----------------------------------------------------------------------------------


def _report(checkpoint: str = "") -> EvaluationReport:
    cm = ConfusionMatrix(3)
    # class 0: TP 6 FN 2 (1 as class 1, 1 unlabeled); class 1: TP 2 FP 1; class 2 absent
    cm.update(
        np.array([[0, 0, 0, 0, 0, 0, 1, 255, 1, 1]], np.uint8),
        np.array([[0] * 8 + [1] * 2], np.uint8),
    )
    return EvaluationReport(
        ("road", "sidewalk", "wall"),
        cm,
        latencies_ms=[float(v) for v in range(1, 21)],
        frames=1,
        source="/data/run1",
        model="tiny",
        checkpoint=checkpoint,
    )


def test_report_dict_holds_the_numbers() -> None:
    data = _report("w.safetensors").to_dict()
    assert data["iou"]["road"] == pytest.approx(6 / 8)
    assert data["iou"]["sidewalk"] == pytest.approx(2 / 3)
    assert data["iou"]["wall"] is None  # NaN -> null in JSON
    assert data["miou"] == pytest.approx((6 / 8 + 2 / 3) / 2)
    assert data["pixel_accuracy"] == pytest.approx(8 / 10)
    assert data["latency_ms"] == {
        "count": 20,
        "mean": pytest.approx(10.5),
        "p50": pytest.approx(10.5),
        "p95": pytest.approx(19.05),
        "max": 20.0,
    }
    assert data["frames"] == 1 and data["dropped_frames"] is None and data["pixels"] == 10
    assert data["source"] == "/data/run1" and data["model"] == "tiny"
    assert data["random_weights"] is False
    assert data["confusion"]["columns"][-1] == "unlabeled"
    assert data["confusion"]["matrix"][0] == [6, 1, 0, 1]


def test_markdown_lists_every_class_and_warns_about_random_weights() -> None:
    text = markdown_table(_report())
    assert "random weights: these numbers are meaningless" in text
    for name in ("road", "sidewalk", "wall"):
        assert f"| {name} |" in text
    assert "| road | 75.00 |" in text and "| wall | n/a |" in text
    assert "| mIoU (%) | 70.83 |" in text
    assert "meaningless" not in markdown_table(_report("w.safetensors"))


def test_report_survives_missing_class_names_and_empty_runs() -> None:
    report = EvaluationReport((), ConfusionMatrix(2), dropped_frames=3)
    data = report.to_dict()
    assert list(data["iou"]) == ["class_0", "class_1"] and data["miou"] is None
    assert data["latency_ms"]["p50"] is None and data["dropped_frames"] == 3
    text = markdown_table(report)
    assert "No frame had a label" in text and "| frames dropped | 3 |" in text


def test_write_report_files(tmp_path: Path) -> None:
    paths = write_report(_report(), tmp_path / "out")
    assert set(paths) == {"markdown", "json", "iou_chart", "confusion_chart"}
    assert json.loads(paths["json"].read_text())["iou"]["road"] == pytest.approx(0.75)
    assert paths["markdown"].read_text() == markdown_table(_report())
    for key in ("iou_chart", "confusion_chart"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = cv2.imread(str(paths[key]), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 10  # something was drawn
