"""Corruptions and domain shifts of a frame, for the domain-shift monitor's tests and benchmark.

Each kind takes a strength ``s`` in [0, 1] (0: an unchanged copy, 1: the strongest) and is
deterministic for a given seed (only ``noise`` and ``night`` draw random numbers). The formulas
are in :func:`shift_domain`'s docstring; ``x`` is the image as float in [0, 255], the result is
rounded and clipped back to uint8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import cv2
import numpy as np

from vltseg_ros.data.scenes import check_rgb
from vltseg_ros.errors import ConfigError

ShiftKind = Literal[
    "noise", "blur", "motion_blur", "contrast", "jpeg", "color_cast", "fog", "night"
]
SHIFT_KINDS: tuple[str, ...] = get_args(ShiftKind)
"""Every kind :func:`shift_domain` knows, in the order the benchmark reports them."""

_FOG = (200.0, 202.0, 206.0)
_CAST = (0.45, 0.0, -0.55)  # warm (sodium-lamp-like) cast: red up, blue down


def _noise(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, 50.0 * s, size=x.shape)


def _blur(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(x, (0, 0), sigmaX=6.0 * s, borderType=cv2.BORDER_REFLECT)


def _motion_blur(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    length = 1 + 2 * round(16 * s)  # odd, 33 px at s = 1
    kernel = np.full((1, length), 1.0 / length, dtype=np.float32)
    return cv2.filter2D(x, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _contrast(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    mean = x.mean()
    return mean + (1.0 - 0.9 * s) * (x - mean)


def _jpeg(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    quality = max(1, round(100 - 96 * s))
    bgr = np.ascontiguousarray(np.clip(np.rint(x), 0, 255).astype(np.uint8)[..., ::-1])
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32)


def _color_cast(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    return x * (1.0 + s * np.array(_CAST, dtype=np.float32))


def _fog(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    rows = np.linspace(0.0, 1.0, x.shape[0], dtype=np.float32)[:, None, None]
    weight = s * (0.9 - 0.5 * rows)
    return (1.0 - weight) * x + weight * np.array(_FOG, dtype=np.float32)


def _night(x: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    gamma, gain = 1.0 + 1.5 * s, 1.0 - 0.75 * s
    return 255.0 * gain * (x / 255.0) ** gamma + rng.normal(0.0, 6.0 * s, size=x.shape)


_SHIFTS: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "noise": _noise,
    "blur": _blur,
    "motion_blur": _motion_blur,
    "contrast": _contrast,
    "jpeg": _jpeg,
    "color_cast": _color_cast,
    "fog": _fog,
    "night": _night,
}


def shift_domain(image: np.ndarray, kind: ShiftKind, strength: float, seed: int = 0) -> np.ndarray:
    """A corrupted or domain-shifted version of a frame, for domain-shift tests and benchmarks.

    With ``s`` = ``strength`` and ``x`` the image as float:

    - ``noise``: ``x + N(0, (50 s)^2)`` per pixel and channel (sensor noise, seeded).
    - ``blur``: Gaussian blur of standard deviation ``6 s`` px (defocus).
    - ``motion_blur``: horizontal box blur of ``1 + 2 round(16 s)`` px (33 px at 1; ego
      motion or a long exposure).
    - ``contrast``: ``m + (1 - 0.9 s) (x - m)``, ``m`` the image's mean over all pixels and
      channels (haze, a low-contrast sensor).
    - ``jpeg``: an OpenCV JPEG round trip at quality ``max(1, round(100 - 96 s))`` (4 at 1).
    - ``color_cast``: the R, G, B channels times ``1 + 0.45 s``, ``1``, ``1 - 0.55 s`` (a
      white-balance error under warm street lamps).
    - ``fog``: a blend toward the bright grey (200, 202, 206), its weight
      ``s (0.9 - 0.5 y / (H - 1))`` (densest at the top, far away, thinnest at the bottom).
    - ``night``: ``255 gain (x / 255) ** gamma`` with gamma ``1 + 1.5 s`` and gain
      ``1 - 0.75 s``, plus Gaussian sensor noise of standard deviation ``6 s`` (seeded).

    ``s`` = 0 returns an unchanged copy.

    Args:
        image: (H, W, 3) uint8 RGB.
        kind: one of :data:`SHIFT_KINDS`.
        strength: in [0, 1].
        seed: seed of the random noise (``noise``, ``night``); other kinds ignore it.

    Returns:
        (H, W, 3) uint8 RGB, the image's shape.

    Raises:
        InvalidImageError: not an (H, W, 3) uint8 image.
        ConfigError: an unknown kind or a strength outside [0, 1].
    """
    check_rgb(image)
    if kind not in _SHIFTS:
        raise ConfigError(f"kind must be one of {', '.join(SHIFT_KINDS)}; got {kind!r}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return image.copy()
    rng = np.random.default_rng(seed)
    shifted = _SHIFTS[kind](image.astype(np.float32), float(strength), rng)
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)
