"""``--class-map`` for ``vltseg segment``, ``evaluate`` and ``bag-eval``: outputs in the output
classes, scores equal to the model's mapped through the lookup table, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from test.cli.test_bag_cli import _stored, label_info_of
from test.data import layouts
from vltseg_ros.bag.typestore import SEGMENTATION_INFO, typestore
from vltseg_ros.cli.main import main
from vltseg_ros.config.class_map import load_class_map
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.data import build_dataset
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.segmentor import build_model

REPO = Path(__file__).resolve().parents[2]
TRAVERSABILITY = REPO / "config" / "class_maps" / "traversability.yaml"
WHOLE = ["--inference.mode", "whole", "--inference.whole-size", "64", "128"]
SIZE = (24, 40)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny checkpoint, a 2-frame synthetic bag, a 2-frame Cityscapes split, an image."""
    root = tmp_path_factory.mktemp("class_map_cli")
    checkpoint = save_checkpoint(build_model("tiny").eval(), root / "tiny.safetensors")
    synthetic = ["--synthetic", "2", "--synthetic-size", "64", "128"]
    assert main(["make-bag", "-", str(root / "bag"), *synthetic]) == 0
    rng = np.random.default_rng(0)
    labels = [rng.choice(np.array([0, 1, 2, 8, 9, 10, 13, 255], np.uint8), SIZE) for _ in "ab"]
    frames = {f"aachen_000000_{i:06d}": {"labelTrainIds": ids} for i, ids in enumerate(labels)}
    cityscapes = layouts.cityscapes(root / "cs", "val", frames)
    for index, sample in enumerate(build_dataset("cityscapes", cityscapes, "val").samples):
        layouts.write_image(sample.image, layouts.image_rgb(index, SIZE))
    image = root / "scene.png"
    cv2.imwrite(str(image), np.random.default_rng(1).integers(0, 256, (48, 80, 3), np.uint8))
    return {"checkpoint": checkpoint, "bag": root / "bag", "cs": cityscapes, "image": image}


@pytest.fixture(scope="module")
def bound():
    return load_class_map(TRAVERSABILITY, load_class_set("cityscapes"))


def _mapped_matrix(matrix: list[list[int]], lut: np.ndarray, k: int) -> list[list[int]]:
    """A model-class confusion matrix (C x C+1, last column unlabeled) summed into the output
    classes (K x K+1) through the lookup table."""
    counts = np.asarray(matrix)
    out = np.zeros((k, k + 1), np.int64)
    for target in range(counts.shape[0]):
        for predicted in range(counts.shape[1]):
            row = lut[target]
            column = lut[predicted] if predicted < counts.shape[0] else 255
            if row != 255:
                out[row, min(int(column), k)] += counts[target, predicted]
    return out.tolist()


def test_segment_writes_output_classes(files, bound, tmp_path: Path) -> None:
    args = ["segment", str(files["image"]), "--checkpoint", str(files["checkpoint"]), *WHOLE]
    args += ["--overlay-alpha", "1"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "map"), "--class-map", str(TRAVERSABILITY)]) == 0

    def read(folder: str, kind: str) -> np.ndarray:
        return cv2.imread(str(tmp_path / folder / f"scene_{kind}.png"), cv2.IMREAD_UNCHANGED)

    labels, plain = read("map", "labels"), read("plain", "labels")
    np.testing.assert_array_equal(labels, bound.lut[plain])
    assert set(np.unique(labels).tolist()) <= {0, 1, 2}
    confidence, plain_confidence = read("map", "confidence"), read("plain", "confidence")
    assert (confidence.astype(int) >= plain_confidence.astype(int) - 1).all()  # sums >= parts
    assert (confidence.astype(int) > plain_confidence.astype(int) + 1).any()
    palette = np.array(bound.classes.palette, np.uint8)[:, ::-1]  # BGR in the PNG
    np.testing.assert_array_equal(read("map", "overlay"), palette[labels])


def test_evaluate_scores_the_output_classes(files, bound, tmp_path: Path, capsys) -> None:
    args = ["evaluate", "--dataset", f"cityscapes:{files['cs']}"]
    args += ["--checkpoint", str(files["checkpoint"])]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert main([*args, "--out", str(tmp_path / "map"), "--class-map", str(TRAVERSABILITY)]) == 0
    summary = json.loads((tmp_path / "map" / "summary.json").read_text())
    assert summary["classes"] == ["traversable", "obstacle", "sky"]
    assert summary["class_map"] == f"traversability ({TRAVERSABILITY})"
    report = json.loads((tmp_path / "map" / "cityscapes" / "report.json").read_text())
    plain = json.loads((tmp_path / "plain" / "cityscapes" / "report.json").read_text())
    expected = _mapped_matrix(plain["confusion"]["matrix"], bound.lut, 3)
    assert report["confusion"]["matrix"] == expected
    assert list(report["iou"]) == ["traversable", "obstacle", "sky"]
    assert report["pixels"] == plain["pixels"]  # every Cityscapes class is mapped
    assert f"class map: traversability ({TRAVERSABILITY})" in capsys.readouterr().out


def test_bag_eval_scores_writes_and_rescores_in_output_classes(files, bound, tmp_path) -> None:
    common = ["bag-eval", str(files["bag"]), "--checkpoint", str(files["checkpoint"]), *WHOLE]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    mapped = ["--class-map", str(TRAVERSABILITY)]
    written = tmp_path / "seg"
    outputs = ["--out", str(tmp_path / "map"), "--write-bag", str(written)]
    assert main([*common, *mapped, *outputs]) == 0
    report = json.loads((tmp_path / "map" / "report.json").read_text())
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    expected = _mapped_matrix(plain["confusion"]["matrix"], bound.lut, 3)
    assert report["confusion"]["matrix"] == expected
    assert report["class_map"] == f"traversability ({TRAVERSABILITY})"
    assert list(report["iou"]) == ["traversable", "obstacle", "sky"]

    stored = _stored(written)
    assert stored["/camera/labels"] == _stored(files["bag"])["/camera/labels"]  # as recorded
    for _, cdr in stored["/camera/segmentation/info"]:
        info = typestore().deserialize_cdr(cdr, SEGMENTATION_INFO)
        assert list(info.class_names) == ["traversable", "obstacle", "sky"]
        assert len(info.class_fraction) == 3
    for _, cdr in stored["/camera/segmentation/mask"]:
        mask = typestore().deserialize_cdr(cdr, "sensor_msgs/msg/Image")
        assert set(np.unique(mask.data).tolist()) <= {0, 1, 2}
    label_info, _ = label_info_of(stored)  # the output classes the masks hold, then 255
    assert [(c.class_id, c.class_name) for c in label_info.class_map] == [
        (0, "traversable"),
        (1, "obstacle"),
        (2, "sky"),
        (255, "unlabeled"),
    ]
    assert label_info.threshold == 0.0

    # the written masks are in the output classes: only the labels are mapped
    rescore = ["bag-eval", str(written), "--mask-topic", "/camera/segmentation/mask", *mapped]
    assert main([*rescore, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["confusion"] == report["confusion"] and again["class_map"] == report["class_map"]


def test_mask_topic_in_model_classes_is_refused_with_a_map(files, tmp_path, capsys) -> None:
    written = tmp_path / "seg"
    common = ["bag-eval", str(files["bag"]), "--checkpoint", str(files["checkpoint"]), *WHOLE]
    assert main([*common, "--out", str(tmp_path / "r"), "--write-bag", str(written)]) == 0
    capsys.readouterr()
    rescore = ["bag-eval", str(written), "--mask-topic", "/camera/segmentation/mask"]
    assert main([*rescore, "--class-map", str(TRAVERSABILITY), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    # the bag's LabelInfo says which classes the masks are in
    assert "are in classes 0 road, 1 sidewalk" in err and "score them without --class-map" in err
    assert "LabelInfo on /camera/segmentation/label_info" in err


def test_live_replay_refuses_a_class_map(files, capsys) -> None:
    args = ["bag-eval", str(files["bag"]), "--live", "--class-map", str(TRAVERSABILITY)]
    assert main(args) == 2
    assert "--live does not map the bag's labels" in capsys.readouterr().err


BAD_MAPS = {
    "unknown class": ("classes: [{name: a, id: 0, members: [raod]}]\n", "did you mean 'road'"),
    "duplicate id": ("classes: [{name: a, id: 1}, {name: b, id: 1}]\n", "used twice"),
    "malformed yaml": ("classes: [{name: a, id: 0}\n", "cannot parse"),
    "missing file": (None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_MAPS))
@pytest.mark.parametrize("command", ["segment", "evaluate", "bag-eval"])
def test_bad_class_map_exits_2_with_one_line(files, tmp_path, capsys, command, case) -> None:
    text, message = BAD_MAPS[case]
    path = tmp_path / "map.yaml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    argv = {
        "segment": ["segment", str(files["image"]), "--out", str(out)],
        "evaluate": ["evaluate", "--dataset", f"cityscapes:{files['cs']}", "--out", str(out)],
        "bag-eval": ["bag-eval", str(files["bag"]), "--out", str(out)],
    }[command]
    capsys.readouterr()
    code = main([*argv, "--model", "tiny", *WHOLE, "--class-map", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "internal error" not in err
    line = next(line for line in err.splitlines() if line.startswith(f"vltseg {command}: error:"))
    assert message in line and str(path) in line
    assert err.rstrip().endswith(line)  # the error is the last line and stands alone
    if case != "unknown class":  # read before the model is loaded
        assert "RANDOM" not in err
