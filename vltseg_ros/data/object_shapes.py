"""Irregular blob shapes standing on the ground of a frame, for the unseen objects of
:mod:`vltseg_ros.data.unseen_objects`."""

from __future__ import annotations

import cv2
import numpy as np


def place_blob(
    ground: np.ndarray,
    blocked: np.ndarray,
    feet: np.ndarray,
    top: int,
    share: float,
    perspective: bool,
    rng: np.random.Generator,
    tries: int = 60,
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Place an :func:`irregular_blob` whose lowest 3 rows stand (>= 80 % of their pixels) on
    ``ground``, wholly inside the frame and 2 pixels or more from ``blocked``.

    Args:
        ground: (H, W) bool, where objects may stand.
        blocked: (H, W) bool, pixels the blob must keep off (other objects, void).
        feet: (N, 2) int (row, column) candidate foot pixels, N >= 1 (e.g. ``ground``'s).
        top: the ground's top row; with ``perspective`` the area grows from 0.4x at ``top`` to
            1x at the bottom row.
        share: the blob's area as a share of the H x W frame (before perspective).
        perspective: scale the area with depth (and shrink it by 0.8 every 20 failed tries).
        rng: the random generator (the same state gives the same blob).
        tries: candidate feet to try.

    Returns:
        (the (rows, columns) window of the frame holding the blob, its bool mask there), or
        None when no try fits.
    """
    height, width = ground.shape
    keep_off = cv2.dilate(blocked.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    for attempt in range(tries):
        foot_y, foot_x = feet[rng.integers(len(feet))]
        depth = (foot_y - top + 1) / max(height - top, 1)
        area = height * width * share * ((0.4 + 0.6 * depth) if perspective else 1.0)
        area *= 0.8 ** (attempt // 20) if perspective else 1.0
        placed = irregular_blob((height, width), float(foot_y), float(foot_x), area, rng)
        if placed is None:
            continue
        window, shape = placed
        rows = np.flatnonzero(shape.any(axis=1))[-3:]
        standing = ground[window][rows][shape[rows]].mean()
        if standing >= 0.8 and not (keep_off[window] & shape).any():
            return window, shape
    return None


def irregular_blob(
    size: tuple[int, int], foot_y: float, foot_x: float, area: float, rng: np.random.Generator
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """An irregular blob of about ``area`` pixels whose lowest pixel is at (foot_y, foot_x):
    (the window of the (H, W) frame that holds it, its bool mask there), or None where it
    would reach out of the frame."""
    lobes = [(0.0, 0.0, 1.0)]
    if rng.random() < 0.6:  # a second, smaller lobe on the upper half: a head, a branch
        angle = rng.uniform(-np.pi, 0.0)
        reach = rng.uniform(0.6, 0.9)
        lobes.append((reach * np.cos(angle), reach * np.sin(angle), rng.uniform(0.4, 0.7)))
    aspect = rng.uniform(0.6, 1.6)  # height / width
    waves = [(rng.uniform(0.0, 0.25 / k**0.5), k, rng.uniform(0, 2 * np.pi)) for k in range(2, 7)]

    def inside(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        shape = np.zeros(u.shape, dtype=bool)
        for cu, cv, radius in lobes:
            du, dv = (u - cu) / radius, (v - cv) / (radius * aspect)
            angle = np.arctan2(dv, du)
            rim = 1.0 + sum(a * np.sin(k * angle + phase) for a, k, phase in waves)
            shape |= np.hypot(du, dv) <= rim
        return shape

    unit = np.linspace(-3.0, 3.0, 241, dtype=np.float32)
    v_unit, u_unit = np.meshgrid(unit, unit, indexing="ij")
    fine = inside(u_unit, v_unit)
    scale = float(np.sqrt(area / (fine.sum() * (unit[1] - unit[0]) ** 2)))
    rows, cols = np.flatnonzero(fine.any(axis=1)), np.flatnonzero(fine.any(axis=0))
    cy = foot_y - float(unit[rows[-1]]) * scale  # the lowest point on the foot row
    top, bottom = int(cy + unit[rows[0]] * scale) - 1, int(foot_y) + 2
    left, right = int(foot_x + unit[cols[0]] * scale) - 1, int(foot_x + unit[cols[-1]] * scale) + 2
    if top < 0 or left < 0 or bottom > size[0] or right > size[1]:
        return None
    window = (slice(top, bottom), slice(left, right))
    ys, xs = np.mgrid[window].astype(np.float32)
    shape = inside((xs - foot_x) / scale, (ys - cy) / scale)
    return (window, shape) if shape.any() else None
