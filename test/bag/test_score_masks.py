"""``vltseg bag-eval --mask-topic`` with a LabelInfo beside the masks: the report's classes are
the LabelInfo's (IoUs counted by hand), the class map must agree with it, and a LabelInfo the
labels or masks cannot match is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from test.bag import START_NS
from vltseg_ros.bag import serialization
from vltseg_ros.bag.typestore import LABEL_INFO
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.cli.main import main

IMAGE = "sensor_msgs/msg/Image"
MASKS, LABELS = "/rover/segmentation/mask", "/rover/labels"
LABEL_INFO_TOPIC = "/rover/segmentation/label_info"
CLASSES = [(0, "free"), (1, "blocked"), (4, "water")]
"""Another model's ontology, with a gap: ids 2 and 3 are no class."""
REPO = Path(__file__).resolve().parents[2]
TRAVERSABILITY = REPO / "config" / "class_maps" / "traversability.yaml"


def _label_and_mask() -> tuple[np.ndarray, np.ndarray]:
    """A 20x30 label: free rows 0-4 (5 pixels of row 0 ignored), blocked rows 5-14, water rows
    15-19. The mask calls 20 free pixels blocked, 75 water pixels free, leaves 6 blocked
    pixels unlabeled (255) and says water on the ignored pixels."""
    label = np.zeros((20, 30), np.uint8)
    label[5:15], label[15:] = 1, 4
    label[0, :5] = 255
    mask = label.copy()
    mask[0, :5] = 4
    mask[1:3, :10] = 1
    mask[15:, :15] = 0
    mask[5, :6] = 255
    return label, mask


def _bag(
    path: Path,
    label_infos: list[list[tuple[int, str]]] | None = None,
    label: np.ndarray | None = None,
    frames: int = 2,
) -> None:
    """A bag of ``frames`` masks and labels (:func:`_label_and_mask`, or ``label``) and one
    LabelInfo per entry of ``label_infos`` (thresholds 0.5, 0.6, ...) before the first mask."""
    truth, mask = _label_and_mask()
    label = truth if label is None else label
    with BagWriter(path) as writer:
        writer.add_topic(MASKS, IMAGE)
        writer.add_topic(LABELS, IMAGE)
        for index, classes in enumerate(label_infos or []):
            writer.add_topic(LABEL_INFO_TOPIC, LABEL_INFO)
            cdr = serialization.label_info_cdr(START_NS, "", classes, 0.5 + index / 10)
            writer.write(LABEL_INFO_TOPIC, START_NS - 1, cdr)
        for index in range(frames):
            stamp = START_NS + index * 10**8
            writer.write(MASKS, stamp, serialization.image_cdr(mask, "mono8", stamp, "rover"))
            writer.write(LABELS, stamp, serialization.image_cdr(label, "mono8", stamp, "rover"))


def _score(bag: Path, out: Path, *extra: str) -> int:
    return main(["bag-eval", str(bag), "--mask-topic", MASKS, "--out", str(out), *extra])


def test_label_info_names_the_classes_and_ids(tmp_path: Path) -> None:
    # two LabelInfos with the same classes (the threshold changed): one ontology
    _bag(tmp_path / "bag", [[*CLASSES, (255, "unlabeled")], [(255, "unlabeled"), *CLASSES]])
    assert _score(tmp_path / "bag", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    free = 125 / (125 + 20 + 75)  # TP 145 - 20; FN 20 called blocked; FP 75 water called free
    blocked = 294 / (294 + 6 + 20)  # TP 300 - 6; FN 6 unlabeled; FP 20 free called blocked
    water = 75 / (75 + 75)  # TP 75; FN 75 called free; no FP (the ignored pixels do not count)
    assert report["iou"] == {
        "free": free,
        "blocked": blocked,
        "unused_2": None,  # ids no class has: never in a mask or a label
        "unused_3": None,
        "water": water,
    }
    assert report["miou"] == pytest.approx((free + blocked + water) / 3, abs=1e-15)
    assert report["pixel_accuracy"] == pytest.approx((125 + 294 + 75) / 595, abs=1e-15)
    assert report["frames"] == 2 and report["pixels"] == 2 * 595
    assert report["confusion"]["columns"][-1] == "unlabeled"
    assert "| water |" in (tmp_path / "out" / "report.md").read_text()


def test_without_label_info_the_ids_are_cityscapes_train_ids(tmp_path: Path) -> None:
    _bag(tmp_path / "bag")
    assert _score(tmp_path / "bag", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    scored = {name: value for name, value in report["iou"].items() if value is not None}
    assert scored == {"road": 125 / 220, "sidewalk": 294 / 320, "fence": 0.5}
    assert len(report["iou"]) == 19


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "label ids",
            r"the label at stamp \d+ ns holds values \[2\], which are no class ids of the masks' "
            r"LabelInfo on /rover/segmentation/label_info \(0 free, 1 blocked, 4 water; 255 "
            r"unlabeled\).*\(--class-map\)",
        ),
        (
            "class map",
            r"the masks on /rover/segmentation/mask are in classes 0 free, 1 blocked, 4 water "
            r"\(as the LabelInfo on /rover/segmentation/label_info records them\), not in the "
            r"class map's 0 traversable, 1 obstacle, 2 sky: score them without --class-map",
        ),
        (
            "classes change",
            r"the LabelInfo on /rover/segmentation/label_info changes its classes during the "
            r"bag \(message 2 of 2\)",
        ),
        (
            "id over 255",
            r"the LabelInfo on /rover/segmentation/label_info lists ids \[300\], which a mono8 "
            r"mask cannot hold",
        ),
        ("id twice", r"LabelInfo on /rover/segmentation/label_info lists ids \[1\] twice"),
        ("no class", r"LabelInfo on /rover/segmentation/label_info lists no class but 255"),
    ],
)
def test_a_label_info_that_cannot_be_matched_is_a_one_line_error(
    tmp_path: Path, capsys, case: str, message: str
) -> None:
    import re

    label_infos = {
        "classes change": [CLASSES, [(0, "free"), (1, "blocked"), (2, "water")]],
        "id over 255": [[*CLASSES, (300, "sand")]],
        "id twice": [[*CLASSES, (1, "rock")]],
        "no class": [[(255, "unlabeled")]],
    }.get(case, [CLASSES])
    label = None
    if case == "label ids":
        label, _ = _label_and_mask()
        label[10, 10] = 2  # a gap id: no class of the LabelInfo
    _bag(tmp_path / "bag", label_infos, label)
    extra = ["--class-map", str(TRAVERSABILITY)] if case == "class map" else []
    capsys.readouterr()
    assert _score(tmp_path / "bag", tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.rstrip().splitlines()[-1]
    assert line.startswith("vltseg bag-eval: error: ") and re.search(message, line), err
