"""``vltseg make-scenes --unseen-objects``: scenes with pasted unseen objects written as a
Cityscapes split and a road_anomaly21 anomaly set, measured end to end by ``vltseg evaluate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vltseg_ros.cli.main import main
from vltseg_ros.data import build_dataset
from vltseg_ros.data.anomaly_sets import anomaly_samples, load_anomaly_sample
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.scenes_dataset import write_scenes
from vltseg_ros.data.unseen_objects import paste_hard_unseen_objects, paste_unseen_objects
from vltseg_ros.errors import DatasetError

SIZE = (128, 256)  # (H, W)
SEED = 300000  # held out; with "hard": 300000 -> textured, 300001 -> near_class


def _make(root: Path, kind: str) -> None:
    argv = ["make-scenes", str(root), "--count", "2", "--seed", str(SEED), "--size", "256x128"]
    assert main([*argv, "--split", "val", "--unseen-objects", kind]) == 0


def _expected(seed: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pasted image, pasted labels, object mask, the scene's own void) of one scene."""
    image, labels = synthetic_street_scene(*SIZE, seed=seed, void_objects=True)
    if kind == "animals":
        pasted = paste_unseen_objects(image, labels, seed=seed)
    else:
        scenario = {"hard": ("textured", "near_class")[seed - SEED]}.get(kind, kind)
        pasted = paste_hard_unseen_objects(image, labels, seed, scenario)
    return *pasted, labels == 255


@pytest.mark.parametrize("kind", ["hard", "animals", "small"])
def test_make_scenes_writes_pasted_scenes_and_anomaly_truth(tmp_path, capsys, kind) -> None:
    root = tmp_path / "scenes"
    _make(root, kind)
    assert f"anomaly set road_anomaly21:{root}" in capsys.readouterr().out
    dataset = build_dataset("cityscapes", root, "val")
    samples = anomaly_samples("road_anomaly21", root)
    assert [s.name for s in samples] == [
        "scenes_300000_000000_validation",
        "scenes_300001_000000_validation",
    ]
    for offset, (item, sample) in enumerate(zip(dataset, samples, strict=True)):
        image, labels, mask, void = _expected(SEED + offset, kind)
        assert mask.any() and void.any()
        assert np.array_equal(item["image"], image) and np.array_equal(item["labels"], labels)
        anomaly_image, truth = load_anomaly_sample(sample)
        assert np.array_equal(anomaly_image, image)  # the same pasted scene, lossless
        assert np.array_equal(truth == 1, mask)  # exactly the pasted objects
        assert np.array_equal(truth == 255, void & ~mask)  # the scene's own void objects
        assert set(np.unique(truth)) == {0, 1, 255}


def test_evaluate_measures_the_written_anomaly_set(tmp_path, capsys) -> None:
    root, out = tmp_path / "scenes", tmp_path / "eval"
    _make(root, "hard")
    capsys.readouterr()
    argv = ["evaluate", "--model", "synthetic-scenes-demo", "--out", str(out)]
    argv += ["--dataset", f"cityscapes:{root}", "--anomaly", f"road_anomaly21:{root}"]
    assert main([*argv, "--anomaly-method", "max_logit"]) == 0
    report = json.loads((out / "anomaly" / "road_anomaly21" / "report.json").read_text())
    scenes = [_expected(SEED + i, "hard")[2:] for i in range(2)]
    assert report["frames"] == 2 and report["method"] == "max_logit"
    assert report["anomaly_pixels"] == sum(int(mask.sum()) for mask, _ in scenes)
    void = sum(int((void & ~mask).sum()) for mask, void in scenes)  # not evaluated
    assert report["pixels"] == 2 * SIZE[0] * SIZE[1] - void
    for name in ("max_logit", "max_probability"):
        assert 0.5 < report["metrics"][name]["auroc"] <= 1.0  # better than chance, not perfect
    summary = json.loads((out / "summary.json").read_text())
    assert "road_anomaly21" in json.dumps(summary) and "cityscapes" in json.dumps(summary)


def test_make_scenes_without_unseen_objects_writes_no_anomaly_set(tmp_path) -> None:
    root = tmp_path / "plain"
    _make(root, "none")
    assert not (root / "images").exists() and not (root / "labels_masks").exists()
    item = build_dataset("cityscapes", root, "val")[0]
    image, labels = synthetic_street_scene(*SIZE, seed=SEED, void_objects=True)
    assert np.array_equal(item["image"], image) and np.array_equal(item["labels"], labels)


def test_unseen_objects_are_validated(tmp_path, capsys) -> None:
    with pytest.raises(DatasetError, match="unknown unseen_objects 'cats'"):
        write_scenes(tmp_path / "a", 1, size=(64, 128), unseen_objects="cats")
    with pytest.raises(SystemExit) as exit_info:
        main(["make-scenes", str(tmp_path / "b"), "--count", "1", "--unseen-objects", "cats"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    (tmp_path / "c" / "images").mkdir(parents=True)
    (tmp_path / "c" / "images" / "other.png").write_bytes(b"")
    with pytest.raises(DatasetError, match="already holds files"):
        write_scenes(tmp_path / "c", 1, size=(64, 128), unseen_objects="hard")
