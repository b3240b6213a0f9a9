"""Synthetic street scenes with exact labels, for demos and tests that need no data set.

The scenes are deliberately simple (flat colored regions in a driving-camera layout: sky,
buildings, vegetation, sidewalk, road, cars, poles, signs) so that they can be
generated anywhere, labelled exactly, and learned by a small model in tests.
"""

from __future__ import annotations

import numpy as np

from vltseg_ros.config import ClassSetConfig, load_class_set


def synthetic_street_scene(
    height: int = 512, width: int = 1024, seed: int = 0, class_set: ClassSetConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one street-like frame and its label map.

    Args:
        height, width: frame size in pixels (at least 32 each).
        seed: random seed; the same seed gives the same scene.
        class_set: the class set whose names and palette are used (default: Cityscapes); it
            must contain the classes drawn here (road, sidewalk, building, vegetation, sky,
            car, pole, traffic sign).

    Returns:
        image: (H, W, 3) uint8 RGB, the class colors shaded and with noise.
        labels: (H, W) uint8 train ids of ``class_set``.
    """
    if height < 32 or width < 32:
        raise ValueError(f"synthetic scenes need at least 32x32 pixels, got {height}x{width}")
    class_set = class_set or load_class_set("cityscapes")
    ids = {name: i for i, name in enumerate(class_set.names)}
    rng = np.random.default_rng(seed)
    labels = np.full((height, width), ids["sky"], dtype=np.uint8)
    horizon = int(height * rng.uniform(0.40, 0.52))
    ys, xs = np.mgrid[0:height, 0:width]

    x = 0
    while x < width:  # a skyline of buildings and trees
        w = int(width * rng.uniform(0.06, 0.16))
        top = int(horizon * rng.uniform(0.05, 0.7))
        kind = "vegetation" if rng.random() < 0.3 else "building"
        labels[top:horizon, x : x + w] = ids[kind]
        x += w

    labels[horizon:] = ids["sidewalk"]
    center = width * rng.uniform(0.4, 0.6)
    half = 0.05 * width + (ys - horizon) / max(height - horizon, 1) * 0.55 * width
    road = (ys >= horizon) & (np.abs(xs - center) <= half)
    labels[road] = ids["road"]

    for _ in range(int(rng.integers(2, 5))):  # cars standing on the road
        cy = int(rng.uniform(horizon + 0.15 * (height - horizon), height * 0.95))
        scale = (cy - horizon) / max(height - horizon, 1)
        ch, cw = max(int(0.35 * height * scale), 4), max(int(0.3 * width * scale), 6)
        cx = int(center + rng.uniform(-0.8, 0.8) * (0.05 * width + scale * 0.55 * width))
        labels[max(cy - ch, 0) : cy, max(cx - cw // 2, 0) : cx + cw // 2] = ids["car"]

    for _ in range(int(rng.integers(1, 4))):  # poles with a sign on the sidewalk side
        px = int(rng.uniform(0.02, 0.98) * width)
        bottom = int(height * rng.uniform(0.6, 0.9))
        pw = max(width // 200, 2)
        labels[int(horizon * 0.4) : bottom, px : px + pw] = ids["pole"]
        sign = max(width // 60, 4)
        top = int(horizon * 0.4)
        labels[top : top + sign, max(px - sign // 2, 0) : px + sign // 2 + pw] = ids[
            "traffic sign"
        ]

    return _paint(labels, ys, rng, class_set), labels


def _paint(
    labels: np.ndarray, ys: np.ndarray, rng: np.random.Generator, class_set: ClassSetConfig
) -> np.ndarray:
    """Class colors with a vertical shading and noise, so the image is not a flat palette."""
    colors = np.asarray(class_set.palette, dtype=np.float32)[labels]
    shade = 0.75 + 0.25 * (ys / max(labels.shape[0] - 1, 1))[..., None]
    noise = rng.normal(0.0, 6.0, size=colors.shape)
    return np.clip(colors * shade + noise, 0, 255).astype(np.uint8)
