"""Palette images, overlays and the synthetic street scenes."""

from __future__ import annotations

import numpy as np
import pytest

from vltseg_ros.config import load_class_set
from vltseg_ros.samples import synthetic_street_scene
from vltseg_ros.visualize import colorize, confidence_to_uint8, overlay

CLASSES = load_class_set("cityscapes")


def test_colorize_uses_the_palette_and_blacks_out_ignored() -> None:
    labels = np.array([[0, 13], [255, 18]], dtype=np.uint8)
    colors = colorize(labels, CLASSES)
    assert colors.dtype == np.uint8 and colors.shape == (2, 2, 3)
    assert tuple(colors[0, 0]) == (128, 64, 128) and tuple(colors[0, 1]) == (0, 0, 142)
    assert tuple(colors[1, 0]) == (0, 0, 0) and tuple(colors[1, 1]) == (119, 11, 32)


def test_overlay_blends_and_keeps_ignored_pixels() -> None:
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    labels = np.array([[0, 255], [10, 10]], dtype=np.uint8)
    out = overlay(image, labels, CLASSES, alpha=0.5)
    assert tuple(out[0, 0]) == (114, 82, 114)  # (100 + (128, 64, 128)) / 2
    assert tuple(out[0, 1]) == (100, 100, 100)
    assert tuple(out[1, 0]) == (85, 115, 140)  # sky (70, 130, 180)
    with pytest.raises(ValueError, match="differ"):
        overlay(image, labels[:1], CLASSES)


def test_confidence_to_uint8() -> None:
    conf = np.array([0.0, 0.5, 1.0, 1.2], dtype=np.float32)
    assert confidence_to_uint8(conf).tolist() == [0, 128, 255, 255]


def test_synthetic_scene_is_deterministic_and_labelled() -> None:
    image, labels = synthetic_street_scene(256, 512, seed=7)
    again, labels_again = synthetic_street_scene(256, 512, seed=7)
    assert np.array_equal(image, again) and np.array_equal(labels, labels_again)
    assert image.shape == (256, 512, 3) and image.dtype == np.uint8
    assert labels.shape == (256, 512) and labels.dtype == np.uint8
    present = {CLASSES.names[i] for i in np.unique(labels)}
    assert {"road", "sidewalk", "sky", "car"} <= present
    assert labels[0].tolist().count(CLASSES.names.index("sky")) > 0  # sky on top
    assert labels[-1, 256] == CLASSES.names.index("road")  # road at the bottom center
    # each class is drawn near its palette color
    for class_id in np.unique(labels):
        mean = image[labels == class_id].mean(0)
        assert np.abs(mean - np.array(CLASSES.palette[class_id]) * 0.875).max() < 45
    assert not np.array_equal(synthetic_street_scene(256, 512, seed=8)[1], labels)
    with pytest.raises(ValueError, match="at least 32"):
        synthetic_street_scene(16, 512)
