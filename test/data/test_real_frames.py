"""A real Cityscapes frame through the reader and the reference transform (skipped without
../shared/data)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from test.conftest import shared_frame
from vltseg_ros.data import TrainTransform, build_dataset


def test_real_cityscapes_frame(tmp_path):
    image = shared_frame("cityscapes_frankfurt_000001_055709_leftImg8bit.png")
    label = shared_frame("cityscapes_frankfurt_000001_055709_gtFine_labelTrainIds.png")
    base = "frankfurt_000001_055709"
    for folder, source, suffix in (
        ("leftImg8bit", image, "leftImg8bit"),
        ("gtFine", label, "gtFine_labelTrainIds"),
    ):
        target = tmp_path / folder / "val" / "frankfurt" / f"{base}_{suffix}.png"
        target.parent.mkdir(parents=True)
        os.symlink(source, target)
    dataset = build_dataset("cityscapes", tmp_path, "val")
    item = dataset[0]
    assert item["image"].shape == (1024, 2048, 3)
    np.testing.assert_array_equal(item["labels"], np.array(Image.open(label)))
    dataset.transform = TrainTransform.reference("cityscapes")
    out_image, out_labels = dataset[(0, 5)]["image"], dataset[(0, 5)]["labels"]
    assert out_image.shape == (3, 1024, 1024) and out_labels.shape == (1024, 1024)
    counts = np.bincount(out_labels[out_labels != 255].numpy().ravel())
    assert counts.max() / counts.sum() < 0.75
