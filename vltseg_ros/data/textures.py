"""Procedural natural-looking textures and colors for the hard unseen objects of
:mod:`vltseg_ros.data.unseen_objects` (generated from noise: no copies of real images).

A texture is a (h, w) float field in [0, 1] (:func:`texture_field`: fractal noise, wood grain,
fur-like strands or mottled patches) mapped between two RGB colors (:func:`paint_texture`).
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

TEXTURE_KINDS = ("fractal", "grain", "fur", "mottled")
"""The texture families :func:`texture_field` draws."""


def value_noise(size: tuple[int, int], cells: float, rng: np.random.Generator) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1]: a random grid of about ``cells`` cells across the
    longer side, upsampled bicubically."""
    h, w = size
    scale = max(h, w) / max(cells, 1.0)
    grid = rng.random((int(np.ceil(h / scale)) + 2, int(np.ceil(w / scale)) + 2))
    big = cv2.resize(
        grid.astype(np.float32), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC
    )
    return np.clip(big[:h, :w], 0.0, 1.0)


def fractal_noise(
    size: tuple[int, int], rng: np.random.Generator, octaves: int = 4, cells: float = 3.0
) -> np.ndarray:
    """(h, w) float32 in [0, 1]: ``octaves`` octaves of :func:`value_noise`, each with twice the
    cells and half the amplitude of the one before, stretched to fill [0, 1]."""
    total = np.zeros(size, dtype=np.float32)
    for octave in range(octaves):
        total += 0.5**octave * value_noise(size, cells * 2**octave, rng)
    return _stretch(total)


def texture_field(size: tuple[int, int], kind: str, rng: np.random.Generator) -> np.ndarray:
    """(h, w) float32 field in [0, 1] of one texture family (:data:`TEXTURE_KINDS`):

    * ``fractal``: lichen- or stone-like fractal noise;
    * ``grain``: wood grain or bark: warped parallel bands at a random angle;
    * ``fur``: fine strands at a random angle over a soft shading;
    * ``mottled``: smooth-edged patches (spots, camouflage).

    Raises:
        ValueError: an unknown kind.
    """
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0.0, np.pi)
    along = np.cos(angle) * xs + np.sin(angle) * ys
    across = -np.sin(angle) * xs + np.cos(angle) * ys
    if kind == "fractal":
        return fractal_noise(size, rng, octaves=5, cells=rng.uniform(2.0, 5.0))
    if kind == "grain":
        warp = fractal_noise(size, rng, octaves=3, cells=3.0)
        period = rng.uniform(3.0, 9.0)
        bands = 0.5 + 0.5 * np.sin(2 * np.pi * across / period + rng.uniform(4.0, 10.0) * warp)
        return _stretch(bands ** rng.uniform(1.0, 3.0) + 0.3 * value_noise(size, 12.0, rng))
    if kind == "fur":
        strands = np.zeros(size, dtype=np.float32)
        for _ in range(6):
            frequency = rng.uniform(0.6, 2.0)  # radians per pixel across the strands
            bend = rng.uniform(-0.05, 0.05)
            strands += np.sin(frequency * across + bend * along + rng.uniform(0, 2 * np.pi))
        shading = fractal_noise(size, rng, octaves=2, cells=2.5)
        return _stretch(0.35 * _stretch(strands) + 0.65 * shading)
    if kind == "mottled":
        field = fractal_noise(size, rng, octaves=3, cells=rng.uniform(3.0, 6.0))
        edge = rng.uniform(0.02, 0.08)
        return np.clip((field - rng.uniform(0.4, 0.6)) / edge * 0.5 + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown texture kind {kind!r}; choose from {', '.join(TEXTURE_KINDS)}")


def paint_texture(
    field: np.ndarray, colors: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """(h, w, 3) uint8 RGB: ``colors[0]`` where ``field`` is 0, ``colors[1]`` where it is 1,
    blended between, plus pixel noise (sigma 4)."""
    low, high = (np.asarray(c, dtype=np.float32) for c in colors)
    image = low + field[..., None] * (high - low) + rng.normal(0.0, 4.0, size=(*field.shape, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def natural_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 RGB colors (0-255) of a natural material: a dark and a light shade of an
    earthy hue (browns, ochres, olives, greys), from very dark to pale."""
    hue = rng.uniform(0.02, 0.25) if rng.random() < 0.8 else rng.uniform(0.0, 1.0)
    saturation = rng.uniform(0.0, 0.15) if rng.random() < 0.25 else rng.uniform(0.15, 0.7)
    dark = rng.uniform(0.08, 0.5)
    light = min(dark + rng.uniform(0.15, 0.45), 0.95)
    jitter = rng.uniform(-0.04, 0.04)
    return (
        _hsv(hue, saturation, dark),
        _hsv((hue + jitter) % 1.0, saturation * rng.uniform(0.6, 1.0), light),
    )


def near_colors(
    base: np.ndarray, rng: np.random.Generator, distance: tuple[float, float] = (10.0, 40.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 RGB colors each at an RGB distance in ``distance`` from ``base`` (float RGB,
    0-255; less where the color space's edge clips them), in random directions."""
    colors = []
    for _ in range(2):
        direction = rng.normal(size=3)
        direction /= max(float(np.linalg.norm(direction)), 1e-6)
        colors.append(np.clip(base + direction * rng.uniform(*distance), 0, 255))
    return colors[0].astype(np.float32), colors[1].astype(np.float32)


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32) * 255


def _stretch(field: np.ndarray) -> np.ndarray:
    """``field`` linearly mapped onto [0, 1] (a constant field becomes 0.5)."""
    low, high = float(field.min()), float(field.max())
    if high - low < 1e-6:
        return np.full(field.shape, 0.5, dtype=np.float32)
    return ((field - low) / (high - low)).astype(np.float32)
