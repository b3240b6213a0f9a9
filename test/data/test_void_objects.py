"""Varied void objects (the demo model's training scenes): deterministic, labelled ignore exactly
where they are painted, standing below the horizon, and written by ``make-scenes``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vltseg_ros.cli.main import main
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.scenes_dataset import write_scenes
from vltseg_ros.data.void_objects import paste_varied_void_objects
from vltseg_ros.errors import DatasetError, InvalidImageError

SIDEWALK = 1


@pytest.mark.parametrize("seed", range(6))
def test_objects_are_ignored_exactly_where_painted_below_the_horizon(seed: int) -> None:
    image, labels = synthetic_street_scene(256, 512, seed=seed)
    out, new = paste_varied_void_objects(image, labels, seed)
    again = paste_varied_void_objects(image, labels, seed)
    assert np.array_equal(out, again[0]) and np.array_equal(new, again[1])
    void = new == 255
    assert not (labels == 255).any() and void.any()
    assert np.array_equal(new[~void], labels[~void])  # nothing else relabelled
    assert np.array_equal(out[~void], image[~void])  # nothing else repainted
    horizon = int(np.argmax((labels == SIDEWALK).any(1)))
    count, components = cv2.connectedComponents(void.astype(np.uint8))
    assert 1 <= count - 1 <= 5  # 1-5 objects (touching ones merge)
    for k in range(1, count):  # each stands (its lowest row) below the horizon
        assert np.nonzero(components == k)[0].max() >= horizon
    assert 0.0005 <= void.mean() <= 5 * 0.025
    assert (labels == 255).sum() == 0 and image.dtype == out.dtype == np.uint8


def test_another_seed_gives_other_objects_and_bad_inputs_raise() -> None:
    image, labels = synthetic_street_scene(128, 256, seed=3)
    first = paste_varied_void_objects(image, labels, 1)[1] == 255
    second = paste_varied_void_objects(image, labels, 2)[1] == 255
    assert not np.array_equal(first, second)
    with pytest.raises(InvalidImageError):
        paste_varied_void_objects(image.astype(np.float32), labels, 1)
    with pytest.raises(InvalidImageError, match="labels must be"):
        paste_varied_void_objects(image, labels[:10], 1)


def test_write_scenes_and_make_scenes_draw_them(tmp_path: Path) -> None:
    root = write_scenes(tmp_path / "api", 2, seed=7, size=(128, 256), void_objects="varied")
    expected = paste_varied_void_objects(*synthetic_street_scene(128, 256, seed=8), 8)
    name = "scenes_000008_000000"
    written = cv2.imread(str(root / "leftImg8bit/train/scenes" / f"{name}_leftImg8bit.png"))
    assert np.array_equal(written[..., ::-1], expected[0])
    labels_file = root / "gtFine/train/scenes" / f"{name}_gtFine_labelTrainIds.png"
    assert np.array_equal(cv2.imread(str(labels_file), cv2.IMREAD_UNCHANGED), expected[1])
    argv = ["make-scenes", str(tmp_path / "cli"), "--count", "1", "--seed", "8"]
    assert main([*argv, "--size", "256x128", "--void-objects", "varied"]) == 0
    cli = tmp_path / "cli/gtFine/train/scenes" / f"{name}_gtFine_labelTrainIds.png"
    assert np.array_equal(cv2.imread(str(cli), cv2.IMREAD_UNCHANGED), expected[1])
    flat = write_scenes(tmp_path / "flat", 1, seed=8, size=(128, 256))  # the default: flat
    flat_labels = flat / "gtFine/train/scenes" / f"{name}_gtFine_labelTrainIds.png"
    drawn = synthetic_street_scene(128, 256, seed=8, void_objects=True)[1]
    assert np.array_equal(cv2.imread(str(flat_labels), cv2.IMREAD_UNCHANGED), drawn)
    with pytest.raises(DatasetError, match="unknown void_objects 'fancy'"):
        write_scenes(tmp_path / "bad", 1, void_objects="fancy")
