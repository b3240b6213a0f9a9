"""Palette images, overlays and confidence images (vltseg_ros.inference.visualize)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.inference.visualize import colorize, confidence_to_uint8, overlay

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


def test_anomaly_to_uint8_shows_normal_as_black_and_unclaimed_as_white() -> None:
    from vltseg_ros.inference.visualize import anomaly_to_uint8

    owned = -math.tanh(1.0)  # rba of a pixel one class owns (raw score 1)
    rba = np.array([[owned, -0.5, 0.0, -3.0]], np.float32)
    assert anomaly_to_uint8(rba, "rba").tolist() == [[0, 88, 255, 0]]  # -3.0: clipped
    logit = np.array([[-1.0, -0.5, 0.0, -7.0]], np.float32)
    assert anomaly_to_uint8(logit, "max_logit").tolist() == [[0, 128, 255, 0]]
    for method in ("max_probability", "entropy"):
        probability = np.array([[0.0, 0.5, 1.0, 0.25]], np.float32)
        assert anomaly_to_uint8(probability, method).tolist() == [[0, 128, 255, 64]]
