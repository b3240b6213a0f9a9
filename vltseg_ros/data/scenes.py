"""Synthetic street scenes with exact labels, for demos and tests that need no data set.

The scenes are deliberately simple (flat colored regions in a driving-camera layout: sky,
buildings, vegetation, sidewalk, road, cars, poles, signs) so that they can be
generated anywhere, labelled exactly, and learned by a small model in tests.
:func:`paste_unseen_objects` adds objects of no known class (anomalies) and
:func:`shift_domain` darkens or fogs a frame, for anomaly and domain-shift tests.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vltseg_ros.config.model_config import ClassSetConfig, load_class_set
from vltseg_ros.errors import ConfigError, InvalidImageError


def synthetic_street_scene(
    height: int = 512,
    width: int = 1024,
    seed: int = 0,
    class_set: ClassSetConfig | None = None,
    void_objects: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one street-like frame and its label map.

    With ``void_objects``, like Cityscapes, whose "static" and "dynamic" void pixels (bins,
    boards, carts: things of no class) are labelled ignore, a scene holds 1-4 void objects:
    flat boxes and ellipses of a random color standing below the horizon, ~0.2-1.5 % of the
    frame each, labelled ``class_set.ignore_index``. Mask2Former's mask loss trains every
    query to reject them.

    Args:
        height, width: frame size in pixels (at least 32 each).
        seed: random seed; the same seed gives the same scene.
        class_set: the class set whose names and palette are used (default: Cityscapes); it
            must contain the classes drawn here (road, sidewalk, building, vegetation, sky,
            car, pole, traffic sign).
        void_objects: draw the void objects (the data sets of :mod:`vltseg_ros.data.scenes_dataset`
            do; without them every pixel has a class).

    Returns:
        image: (H, W, 3) uint8 RGB, the class colors shaded and with noise.
        labels: (H, W) uint8 train ids of ``class_set`` (``ignore_index`` on void objects).
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

    colors = np.asarray(class_set.palette, dtype=np.float32)[labels]
    if void_objects:
        for _ in range(int(rng.integers(1, 5))):
            shape = _void_object(labels.shape, horizon, ys, xs, rng)
            labels[shape] = class_set.ignore_index
            colors[shape] = rng.uniform(0, 255, size=3)
    return _paint(colors, ys, rng), labels


def _void_object(
    size: tuple[int, int], horizon: int, ys: np.ndarray, xs: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) bool: a box or an ellipse standing on a random row below ``horizon``."""
    height, width = size
    area = height * width * rng.uniform(0.002, 0.015)
    aspect = rng.uniform(0.4, 2.5)  # height / width
    h, w = np.sqrt(area * aspect), np.sqrt(area / aspect)
    bottom = rng.uniform(horizon + 0.1 * (height - horizon), height)
    cy, cx = bottom - h / 2, rng.uniform(0, width)
    if rng.random() < 0.5:
        return (np.abs(ys - cy) <= h / 2) & (np.abs(xs - cx) <= w / 2)
    return ((ys - cy) / (h / 2)) ** 2 + ((xs - cx) / (w / 2)) ** 2 <= 1.0


def _paint(colors: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float colors with a vertical shading and noise, so the image is not flat."""
    shade = 0.75 + 0.25 * (ys / max(colors.shape[0] - 1, 1))[..., None]
    noise = rng.normal(0.0, 6.0, size=colors.shape)
    return np.clip(colors * shade + noise, 0, 255).astype(np.uint8)


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
    _check_rgb(image)
    if labels.dtype != np.uint8 or labels.shape != image.shape[:2]:
        raise InvalidImageError(
            f"labels must be (H, W) uint8 of the image's size {image.shape[:2]}, got "
            f"{labels.shape} {labels.dtype}"
        )
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


def shift_domain(
    image: np.ndarray, kind: Literal["night", "fog"], strength: float, seed: int = 0
) -> np.ndarray:
    """A darker (night) or foggy version of a frame, for domain-shift tests.

    ``night``: ``255 * gain * (x / 255) ** gamma`` with gamma ``1 + 1.5 s`` and gain
    ``1 - 0.75 s``, plus Gaussian sensor noise of std ``6 s``. ``fog``: a blend toward the
    bright grey (200, 202, 206), its weight ``s * (0.9 - 0.5 y / (H - 1))`` (densest at the top,
    far away, thinnest at the bottom). ``s`` = ``strength``; 0 returns an unchanged copy.

    Args:
        image: (H, W, 3) uint8 RGB.
        kind: ``night`` or ``fog``.
        strength: in [0, 1].
        seed: seed of the night noise.

    Returns:
        (H, W, 3) uint8 RGB.

    Raises:
        InvalidImageError: not an (H, W, 3) uint8 image.
        ConfigError: an unknown kind or a strength outside [0, 1].
    """
    _check_rgb(image)
    if kind not in ("night", "fog"):
        raise ConfigError(f"kind must be 'night' or 'fog', got {kind!r}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return image.copy()
    x = image.astype(np.float32)
    if kind == "night":
        gamma, gain = 1.0 + 1.5 * strength, 1.0 - 0.75 * strength
        noise = np.random.default_rng(seed).normal(0.0, 6.0 * strength, size=x.shape)
        x = 255.0 * gain * (x / 255.0) ** gamma + noise
    else:
        rows = np.linspace(0.0, 1.0, image.shape[0], dtype=np.float32)[:, None, None]
        weight = strength * (0.9 - 0.5 * rows)
        x = (1.0 - weight) * x + weight * np.array(_FOG, dtype=np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


_FOG = (200.0, 202.0, 206.0)
_MIN_COLOR_DISTANCE = 80.0


def _check_rgb(image: np.ndarray) -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or (image.shape[2] != 3)
    ):
        raise InvalidImageError(
            f"image must be an (H, W, 3) uint8 RGB array, got {getattr(image, 'shape', None)} "
            f"{getattr(image, 'dtype', type(image).__name__)}"
        )


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
