"""Varied void objects for training scenes: things of no class that the demo model learns to
reject (``vltseg make-scenes --void-objects varied``, the demo model's training data).

:func:`vltseg_ros.data.scenes.synthetic_street_scene` can draw flat boxes and ellipses as void
objects; a model trained on those alone claims a dark, textured thing standing in front of the
buildings as building (docs/trust.md). These vary more, and stay a different family from the
unseen objects the anomaly figures are measured on (:mod:`vltseg_ros.data.unseen_objects`: no
fractal, grain, fur or mottled textures, no irregular blobs): boxes, ellipses and convex
polygons, painted flat, as a linear gradient, as a checker / plaid or as hatching, in a uniformly
random color (half of them) or one 20-70 (RGB distance) from a shaded scene-class color; 1-5
objects of 0.1-2.5 % of the frame each, standing anywhere below the horizon. Labelled ignore, like
Cityscapes' "static" and "dynamic" void pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from vltseg_ros.config.model_config import ClassSetConfig, load_class_set
from vltseg_ros.data.scenes import check_rgb
from vltseg_ros.errors import InvalidImageError

SCENE_CLASSES = (
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "sky",
    "car",
    "pole",
    "traffic sign",
)
"""The classes :func:`~vltseg_ros.data.scenes.synthetic_street_scene` draws."""


def paste_varied_void_objects(
    image: np.ndarray, labels: np.ndarray, seed: int, class_set: ClassSetConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Paint 1-5 varied void objects (module docstring) into a generated scene.

    The horizon is the first row holding sidewalk (row 0 without any). The same inputs and seed
    give the same objects (``numpy.random.default_rng([seed, 777])``).

    Args:
        image: (H, W, 3) uint8 RGB scene drawn without void objects.
        labels: (H, W) uint8 train ids of ``class_set``.
        seed: the scene's seed.
        class_set: the labels' class set (default: Cityscapes), holding :data:`SCENE_CLASSES`.

    Returns:
        (H, W, 3) uint8 RGB copy with the objects painted in (the scenes' vertical shading and
        sensor noise over them) and an (H, W) uint8 copy of the labels, ignore on the objects.

    Raises:
        InvalidImageError: wrong dtypes or shapes.
    """
    class_set = class_set or load_class_set("cityscapes")
    check_rgb(image)
    if labels.dtype != np.uint8 or labels.shape != image.shape[:2]:
        raise InvalidImageError(
            f"labels must be (H, W) uint8 of the image's size {image.shape[:2]}, got "
            f"{labels.shape} {labels.dtype}"
        )
    rng = np.random.default_rng([seed, 777])
    height = labels.shape[0]
    horizon = int(np.argmax((labels == class_set.names.index("sidewalk")).any(1)))
    out, labels = image.astype(np.float32), labels.copy()
    for _ in range(int(rng.integers(1, 6))):
        mask = _shape(labels.shape, horizon, rng)
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        y0, x0 = ys.min(), xs.min()
        paint = _paint(ys.max() - y0 + 1, xs.max() - x0 + 1, rng, class_set)
        shade = 0.75 + 0.25 * ys / max(height - 1, 1)
        noise = rng.normal(0, 6, (ys.size, 3))
        out[ys, xs] = paint[ys - y0, xs - x0] * shade[:, None] + noise
        labels[mask] = class_set.ignore_index
    return np.clip(out, 0, 255).astype(np.uint8), labels


def _color(rng: np.random.Generator, class_set: ClassSetConfig) -> np.ndarray:
    """(3,) float RGB: uniformly random, or 20-70 away from a shaded scene-class color."""
    if rng.random() < 0.5:
        return rng.uniform(0, 255, 3)
    name = SCENE_CLASSES[rng.integers(len(SCENE_CLASSES))]
    shaded = np.asarray(class_set.palette[class_set.names.index(name)], float)
    base = shaded * rng.uniform(0.75, 1.0)
    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * rng.uniform(20, 70)
    return np.clip(base + offset, 0, 255)


def _paint(h: int, w: int, rng: np.random.Generator, class_set: ClassSetConfig) -> np.ndarray:
    """(h, w, 3) float RGB: flat, a linear gradient, a checker / plaid, or hatching."""
    first = _color(rng, class_set)
    second = _color(rng, class_set) if rng.random() < 0.5 else None
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0 or second is None:
        return np.broadcast_to(first, (h, w, 3)).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    u = np.cos(angle) * xs + np.sin(angle) * ys
    v = -np.sin(angle) * xs + np.cos(angle) * ys
    if kind == 1:
        t = (u - u.min()) / max(float(u.max() - u.min()), 1.0)
    elif kind == 2:
        period = rng.uniform(3, 12)
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    else:
        period = rng.uniform(3, 8)
        t = ((u % period) < 1.2).astype(np.float32)
    return first + t[..., None] * (second - first)


def _shape(size: tuple[int, int], horizon: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool: a box, an ellipse or a convex polygon standing below ``horizon``."""
    height, width = size
    area = height * width * rng.uniform(0.001, 0.025)
    aspect = rng.uniform(0.4, 2.5)  # height / width
    h, w = np.sqrt(area * aspect), np.sqrt(area / aspect)
    bottom = rng.uniform(horizon + 0.05 * (height - horizon), height)
    cy, cx = bottom - h / 2, rng.uniform(0, width)
    mask = np.zeros((height, width), np.uint8)
    kind = rng.integers(3)
    if kind == 0:
        corners = (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(bottom))
        cv2.rectangle(mask, *corners, 1, -1)
    elif kind == 1:
        axes = (max(int(w / 2), 1), max(int(h / 2), 1))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, 0, 0, 360, 1, -1)
    else:
        xs = rng.uniform(cx - w / 2, cx + w / 2, 7)
        ys = rng.uniform(cy - h / 2, bottom, 7)
        points = np.stack([xs, ys], 1).astype(np.int32)
        cv2.fillPoly(mask, [cv2.convexHull(points)], 1)
    return mask.astype(bool)
