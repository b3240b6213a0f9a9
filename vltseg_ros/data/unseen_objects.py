"""Objects of no known class pasted into generated street scenes: an anomaly benchmark with exact
ground truth (the pasted pixels).

:func:`paste_unseen_objects` pastes the easy kind (striped animals in colors far from every
class, on the road); :func:`paste_hard_unseen_objects` one of :data:`HARD_SCENARIOS`: irregular
blobs with natural textures (:mod:`vltseg_ros.data.textures`), colors near a class, small
objects, objects on the sidewalk, crowded scenes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from vltseg_ros.config.model_config import ClassSetConfig, load_class_set
from vltseg_ros.data.object_shapes import place_blob
from vltseg_ros.data.scenes import check_rgb
from vltseg_ros.data.textures import (
    TEXTURE_KINDS,
    natural_colors,
    near_colors,
    paint_texture,
    texture_field,
)
from vltseg_ros.errors import ConfigError, InvalidImageError

LOG = logging.getLogger(__name__)

_MIN_COLOR_DISTANCE = 80.0


@dataclass(frozen=True)
class _Scenario:
    count: tuple[int, int]  # objects per scene, both inclusive
    area: tuple[float, float]  # share of the frame per object (before perspective)
    perspective: bool  # scale the area by 0.4-1.0 with the distance below the ground's top
    ground: tuple[str, ...]  # the classes the objects stand on
    near_class: bool  # colors near a class color (else natural_colors)


_SCENARIOS = {
    "textured": _Scenario((1, 3), (0.015, 0.04), True, ("road",), False),
    "near_class": _Scenario((1, 3), (0.015, 0.04), True, ("road",), True),
    "small": _Scenario((2, 4), (0.0013, 0.0034), False, ("road",), False),
    "off_road": _Scenario((1, 3), (0.015, 0.04), True, ("sidewalk",), False),
    "crowded": _Scenario((5, 8), (0.006, 0.02), True, ("road", "sidewalk"), False),
}
HARD_SCENARIOS = tuple(_SCENARIOS)
"""The scenarios of :func:`paste_hard_unseen_objects`."""
NEAR_CLASSES = ("building", "vegetation", "sky", "car", "pole", "traffic sign", "sidewalk")
"""The classes whose colors ``near_class`` objects take (building, dark grey, in over 1 of 3
objects)."""


def paste_unseen_objects(
    image: np.ndarray,
    labels: np.ndarray,
    seed: int,
    count: int = 3,
    class_set: ClassSetConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste objects of a kind no class stands for onto the road: an anomaly benchmark.

    Each object is an irregular animal-like blob (a body, a head and four legs) standing on a
    random road pixel, scaled by its distance below the horizon to cover about 1.5-4 % of the
    frame, painted with a striped texture of two colors far (RGB distance >= 80) from every
    palette color at every shading of :func:`synthetic_street_scene`. Without road pixels the
    objects stand in the bottom 40 % of the frame.

    Args:
        image: (H, W, 3) uint8 RGB frame (e.g. from :func:`synthetic_street_scene`).
        labels: (H, W) uint8 train ids of ``class_set`` (255 = ignore).
        seed: random seed; the same inputs and seed give the same objects.
        count: number of objects, >= 0 (0 returns unchanged copies).
        class_set: the labels' class set (default: Cityscapes); its ``road`` class and palette
            are used.

    Returns:
        image: (H, W, 3) uint8 RGB copy with the objects painted in.
        labels: (H, W) uint8 copy with the objects' pixels set to ``class_set.ignore_index``.
        anomaly_mask: (H, W) bool, True on the objects' pixels.

    Raises:
        InvalidImageError: wrong dtypes or shapes, or image and labels of different sizes.
        ConfigError: a negative count.
    """
    class_set = class_set or load_class_set("cityscapes")
    _check_frame(image, labels)
    if count < 0:
        raise ConfigError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    height, width = labels.shape
    feet = np.argwhere(labels == class_set.names.index("road"))
    if feet.size == 0:
        feet = np.argwhere(np.ones((height, width), dtype=bool))
        feet = feet[feet[:, 0] >= int(0.6 * height)]
    top = int(feet[:, 0].min())
    mask = np.zeros((height, width), dtype=bool)
    out = image.copy()
    for _ in range(count):
        foot_y, foot_x = feet[rng.integers(len(feet))]
        depth = (foot_y - top + 1) / max(height - top, 1)
        area = height * width * rng.uniform(0.015, 0.04) * (0.4 + 0.6 * depth)
        window, shape = _animal((height, width), float(foot_y), float(foot_x), area, rng)
        out[window][shape] = _unseen_texture(shape.shape, rng, class_set)[shape]
        mask[window] |= shape
    labels = labels.copy()
    labels[mask] = class_set.ignore_index
    return out, labels, mask


def _animal(
    size: tuple[int, int], foot_y: float, foot_x: float, area: float, rng: np.random.Generator
) -> tuple[tuple[slice, slice], np.ndarray]:
    """An irregular body blob, a head blob and four legs ending at (foot_y, foot_x), about
    ``area`` pixels in all: (the window of the (H, W) frame that holds it, its bool mask there)."""
    b = float(np.sqrt(area / (1.3 * 1.6 * np.pi)))  # body half-height; body ~ 1 / 1.3 of area
    a, leg = 1.6 * b, 0.6 * b
    cy, cx = foot_y - leg - b, foot_x
    rows = slice(max(int(cy - 1.5 * b), 0), min(int(foot_y) + 1, size[0]))
    cols = slice(max(int(cx - 2.2 * a), 0), min(int(cx + 2.2 * a) + 1, size[1]))
    ys, xs = np.mgrid[rows, cols].astype(np.float32)
    angle = np.arctan2(ys - cy, xs - cx)
    wobble = 1.0 + sum(
        rng.uniform(0.04, 0.12) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)
    )
    body = ((ys - cy) / b) ** 2 + ((xs - cx) / a) ** 2 <= wobble**2
    side = 1.0 if rng.random() < 0.5 else -1.0
    hy, hx, hr = cy - 0.8 * b, cx + side * 1.1 * a, 0.55 * b
    head = ((ys - hy) / hr) ** 2 + ((xs - hx) / (1.2 * hr)) ** 2 <= 1.0
    legs = np.zeros_like(body)
    half = max(0.12 * b, 1.0)
    for offset in (-0.7, -0.35, 0.35, 0.7):
        legs |= (np.abs(xs - (cx + offset * a)) <= half) & (ys >= cy) & (ys <= foot_y)
    return (rows, cols), body | head | legs


def _unseen_texture(
    size: tuple[int, int], rng: np.random.Generator, class_set: ClassSetConfig
) -> np.ndarray:
    """(h, w, 3) uint8 stripes of two random colors unlike any (shaded) palette color."""
    palette = np.asarray(class_set.palette, dtype=np.float32)
    shaded = np.concatenate([palette * s for s in (0.75, 0.875, 1.0)])
    colors: list[np.ndarray] = []
    while len(colors) < 2:
        color = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.linalg.norm(shaded - color, axis=1).min() >= _MIN_COLOR_DISTANCE:
            colors.append(color)
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(6.0, 14.0)
    phase = (np.cos(theta) * xs + np.sin(theta) * ys) * (2 * np.pi / period)
    stripes = (np.sin(phase) > 0)[..., None]
    texture = np.where(stripes, colors[0], colors[1]) + rng.normal(0.0, 4.0, size=(*size, 3))
    return np.clip(texture, 0, 255).astype(np.uint8)


def paste_hard_unseen_objects(
    image: np.ndarray,
    labels: np.ndarray,
    seed: int,
    scenario: str,
    class_set: ClassSetConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste objects of no class that are harder to tell from the scene than
    :func:`paste_unseen_objects`' striped animals: one of :data:`HARD_SCENARIOS`.

    Every object is an irregular blob (a wobbly ellipse, often with a second lobe) standing
    with its lowest pixels on the scenario's ground, not touching another object or a void
    pixel, wholly inside the frame. Scenarios:

    * ``textured``: 1-3 objects of ~0.6-4 % of the frame (larger nearer the camera) on the
      road, painted with a natural texture (fractal noise, wood grain, fur, mottled patches)
      in earthy colors, from very dark to pale;
    * ``near_class``: as ``textured`` but in two colors each 10-40 (RGB distance) from a
      shaded class color of :data:`NEAR_CLASSES` (building in over 1 of 3 objects);
    * ``small``: 2-4 textured objects of 0.13-0.34 % of the frame each on the road;
    * ``off_road``: 1-3 textured objects standing on the sidewalk;
    * ``crowded``: 5-8 textured objects of ~0.25-2 % on the road or the sidewalk.

    An object that finds no place after some tries (a scene with little ground) is left out.
    Without any pixel of the ground classes the objects stand in the bottom 40 % of the frame.

    Args:
        image: (H, W, 3) uint8 RGB frame, H and W >= 32 (e.g. from
            :func:`synthetic_street_scene`).
        labels: (H, W) uint8 train ids of ``class_set`` (255 = ignore).
        seed: random seed; the same inputs, seed and scenario give the same objects.
        scenario: one of :data:`HARD_SCENARIOS`.
        class_set: the labels' class set (default: Cityscapes); it must name the ground classes
            (road, sidewalk) and :data:`NEAR_CLASSES`.

    Returns:
        image: (H, W, 3) uint8 RGB copy with the objects painted in.
        labels: (H, W) uint8 copy with the objects' pixels set to ``class_set.ignore_index``.
        anomaly_mask: (H, W) bool, True exactly on the objects' pixels.

    Raises:
        InvalidImageError: wrong dtypes or shapes, a frame under 32x32, or image and labels of
            different sizes.
        ConfigError: an unknown scenario, or a class set without the classes used.
    """
    class_set = class_set or load_class_set("cityscapes")
    _check_frame(image, labels)
    if scenario not in _SCENARIOS:
        raise ConfigError(
            f"unknown unseen-object scenario {scenario!r}; choose from {', '.join(HARD_SCENARIOS)}"
        )
    setting = _SCENARIOS[scenario]
    missing = sorted(set(setting.ground + NEAR_CLASSES) - set(class_set.names))
    if missing:
        raise ConfigError(f"class set {class_set.name!r} lacks the classes {missing}")
    height, width = labels.shape
    if height < 32 or width < 32:
        raise InvalidImageError(f"frames need at least 32x32 pixels, got {width}x{height} (WxH)")
    rng = np.random.default_rng([seed, HARD_SCENARIOS.index(scenario)])
    ground = np.isin(labels, [class_set.names.index(name) for name in setting.ground])
    if not ground.any():
        ground = np.zeros_like(ground)
        ground[int(0.6 * height) :] = True
    feet = np.argwhere(ground)
    top = int(feet[:, 0].min())
    blocked = labels == class_set.ignore_index
    mask = np.zeros((height, width), dtype=bool)
    out = image.copy()
    for _ in range(int(rng.integers(setting.count[0], setting.count[1] + 1))):
        share = rng.uniform(*setting.area)
        placed = place_blob(ground, blocked | mask, feet, top, share, setting.perspective, rng)
        if placed is None:
            LOG.debug("scenario %s, seed %d: an object found no place", scenario, seed)
            continue
        window, shape = placed
        field = texture_field(shape.shape, TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))], rng)
        colors = _near_class_colors(class_set, rng) if setting.near_class else natural_colors(rng)
        painted = paint_texture(field, colors, rng)
        out[window][shape] = painted[shape]
        mask[window] |= shape
    labels = labels.copy()
    labels[mask] = class_set.ignore_index
    return out, labels, mask


def _near_class_colors(
    class_set: ClassSetConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 RGB colors near one shaded class color of :data:`NEAR_CLASSES` (building:
    over 1 in 3)."""
    name = "building" if rng.random() < 1 / 3 else NEAR_CLASSES[rng.integers(len(NEAR_CLASSES))]
    base = np.asarray(class_set.palette[class_set.names.index(name)], dtype=np.float32)
    return near_colors(base * rng.uniform(0.75, 0.95), rng)


def _check_frame(image: np.ndarray, labels: np.ndarray) -> None:
    """Raise InvalidImageError unless image is (H, W, 3) uint8 and labels (H, W) uint8."""
    check_rgb(image)
    if labels.dtype != np.uint8 or labels.shape != image.shape[:2]:
        raise InvalidImageError(
            f"labels must be (H, W) uint8 of the image's size {image.shape[:2]}, got "
            f"{labels.shape} {labels.dtype}"
        )
