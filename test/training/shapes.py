"""A small generated segmentation data set: coloured shapes on a grey background, one distinct
colour per class, written in the Cityscapes layout (train-id label files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from test.data.layouts import write_grey, write_image
from vltseg_ros.training.run_config import RunConfig, load_run_config

BACKGROUND = 0  # road
CLASS_COLORS = {0: (128, 128, 128), 1: (230, 40, 40), 2: (40, 200, 60), 13: (40, 60, 230)}
"""Train id -> RGB colour: road background, a sidewalk rectangle, a building disc, a car box."""


def shapes_frame(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 RGB image and (size, size) uint8 train ids: every non-background
    class as one shape (side a quarter to a half of the image) in its own random quadrant, so
    every frame holds all 4 classes."""
    labels = np.full((size, size), BACKGROUND, dtype=np.uint8)
    rows, cols = np.mgrid[:size, :size]
    half = size // 2
    quadrants = rng.permutation(4)[:3]
    for class_id, quadrant in zip((1, 2, 13), quadrants, strict=True):
        extent = int(rng.integers(size // 4, half + 1))
        top = (quadrant // 2) * half + int(rng.integers(0, half - extent + 1))
        left = (quadrant % 2) * half + int(rng.integers(0, half - extent + 1))
        if class_id == 2:  # a disc
            radius = extent / 2.0
            inside = (rows - top - radius + 0.5) ** 2 + (cols - left - radius + 0.5) ** 2
            labels[inside <= radius**2] = class_id
        else:
            labels[top : top + extent, left : left + extent] = class_id
    palette = np.zeros((256, 3), dtype=np.uint8)
    for class_id, color in CLASS_COLORS.items():
        palette[class_id] = color
    return palette[labels], labels


def write_shapes(root: Path, count: int, size: int, seed: int = 0, split: str = "train") -> Path:
    """Write ``count`` shape frames in the Cityscapes layout under ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        image, labels = shapes_frame(rng, size)
        base = f"shapes_000000_{i:06d}"
        write_image(root / "leftImg8bit" / split / "shapes" / f"{base}_leftImg8bit.png", image)
        write_grey(root / "gtFine" / split / "shapes" / f"{base}_gtFine_labelTrainIds.png", labels)
    return root


def shapes_run_config(data_root: Path, out: Path, size: int, *overrides: str) -> RunConfig:
    """The ``tiny`` run config on a shapes data set of ``size`` x ``size`` frames (no resizing
    or cropping: whole frames), evaluated on the same frames, plus ``overrides``."""
    return load_run_config(
        "tiny",
        [
            f"data.source=cityscapes:{data_root}",
            f"data.targets=[cityscapes:{data_root}]",
            "data.target_split=train",
            f"data.scale=[{size},{size}]",
            f"data.crop_size=[{size},{size}]",
            f"model.inference.crop_size=[{size},{size}]",
            f"model.inference.stride=[{size},{size}]",
            "loss.num_points=256",
            "eval.limit=null",
            f"output_dir={out}",
            *overrides,
        ],
    )
