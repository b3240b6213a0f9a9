"""Turning label maps and confidence into images people can look at."""

from __future__ import annotations

import numpy as np

from vltseg_ros.config import ClassSet


def palette_lut(class_set: ClassSet, ignore_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """(256, 3) uint8 RGB lookup table: train id -> class color, other ids -> ignore_color."""
    lut = np.tile(np.asarray(ignore_color, dtype=np.uint8), (256, 1))
    lut[: class_set.num_classes] = np.asarray(class_set.palette, dtype=np.uint8)
    return lut


def colorize(labels: np.ndarray, class_set: ClassSet) -> np.ndarray:
    """(H, W) uint8 train ids -> (H, W, 3) uint8 RGB palette image (ignored pixels black)."""
    return palette_lut(class_set)[labels]


def overlay(
    image_rgb: np.ndarray, labels: np.ndarray, class_set: ClassSet, alpha: float = 0.5
) -> np.ndarray:
    """Blend class colors over an (H, W, 3) uint8 RGB image; ignored pixels keep the image.

    Args:
        image_rgb: (H, W, 3) uint8, RGB.
        labels: (H, W) uint8 train ids, ``class_set.ignore_index`` where unlabeled.
        alpha: weight of the class color in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if image_rgb.shape[:2] != labels.shape:
        raise ValueError(f"image {image_rgb.shape[:2]} and labels {labels.shape} differ in size")
    colors = colorize(labels, class_set).astype(np.float32)
    blended = (1.0 - alpha) * image_rgb.astype(np.float32) + alpha * colors
    out = np.rint(blended).astype(np.uint8)
    ignored = labels >= class_set.num_classes
    out[ignored] = image_rgb[ignored]
    return out


def confidence_to_uint8(confidence: np.ndarray) -> np.ndarray:
    """(H, W) float confidence in [0, 1] -> (H, W) uint8 0-255 (rounded, clipped)."""
    return np.clip(np.rint(confidence * 255.0), 0, 255).astype(np.uint8)
