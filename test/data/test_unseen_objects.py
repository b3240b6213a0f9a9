"""The hard unseen objects (vltseg_ros.data.unseen_objects.paste_hard_unseen_objects) and their
textures (vltseg_ros.data.textures): exact masks, sizes, ground, colors, counts per scenario."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.textures import TEXTURE_KINDS, texture_field
from vltseg_ros.data.unseen_objects import (
    HARD_SCENARIOS,
    NEAR_CLASSES,
    paste_hard_unseen_objects,
)
from vltseg_ros.errors import ConfigError, InvalidImageError

CLASSES = load_class_set("cityscapes")
SIZE = (256, 512)
SEEDS = range(8)
COUNTS = {"textured": (1, 3), "near_class": (1, 3), "small": (2, 4), "off_road": (1, 3)}
COUNTS["crowded"] = (5, 8)


def _objects(mask: np.ndarray) -> list[np.ndarray]:
    """The (H, W) bool mask of each 8-connected object."""
    count, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [components == i for i in range(1, count)]


def _paste(scenario: str, seed: int, void_objects: bool = False):
    image, labels = synthetic_street_scene(*SIZE, seed=seed, void_objects=void_objects)
    return image, labels, *paste_hard_unseen_objects(image, labels, seed, scenario)


@pytest.mark.parametrize("scenario", HARD_SCENARIOS)
def test_objects_are_exact_deterministic_and_counted(scenario: str) -> None:
    for seed in SEEDS:
        image, labels, out, new_labels, mask = _paste(scenario, seed)
        again = paste_hard_unseen_objects(image, labels, seed, scenario)
        assert all(
            np.array_equal(a, b) for a, b in zip((out, new_labels, mask), again, strict=True)
        )
        assert out.dtype == np.uint8 and out.shape == image.shape and mask.dtype == bool
        # the mask is exactly the ignored pixels and the painted ones; nothing else changed
        assert np.array_equal(new_labels == CLASSES.ignore_index, mask)
        assert np.array_equal(new_labels[~mask], labels[~mask])
        changed = (out != image).any(axis=-1)
        assert not changed[~mask].any() and changed[mask].mean() > 0.99
        low, high = COUNTS[scenario]
        assert low <= len(_objects(mask)) <= high, (scenario, seed)
    other = paste_hard_unseen_objects(image, labels, seed + 1, scenario)[2]
    assert not np.array_equal(other, mask)


@pytest.mark.parametrize(
    ("scenario", "low", "high"),
    [("small", 0.001, 0.004), ("textured", 0.005, 0.045), ("crowded", 0.0015, 0.025)],
)
def test_object_sizes(scenario: str, low: float, high: float) -> None:
    shares = [obj.mean() for seed in SEEDS for obj in _objects(_paste(scenario, seed)[4])]
    assert low <= min(shares) and max(shares) <= high, (min(shares), max(shares))


@pytest.mark.parametrize(
    ("scenario", "grounds"),
    [
        ("textured", {"road"}),
        ("near_class", {"road"}),
        ("small", {"road"}),
        ("off_road", {"sidewalk"}),
        ("crowded", {"road", "sidewalk"}),
    ],
)
def test_objects_stand_on_their_ground(scenario: str, grounds: set[str]) -> None:
    ids = [CLASSES.names.index(name) for name in grounds]
    for seed in SEEDS:
        _, labels, _, _, mask = _paste(scenario, seed)
        for obj in _objects(mask):
            rows = np.flatnonzero(obj.any(axis=1))[-3:]  # the object's lowest 3 rows
            feet = labels[rows][obj[rows]]
            assert np.isin(feet, ids).mean() >= 0.8, (scenario, seed)


def test_near_class_colors_are_near_a_class_color_and_some_near_building() -> None:
    names = list(NEAR_CLASSES)
    palette = np.asarray([CLASSES.palette[CLASSES.names.index(n)] for n in names], np.float32)
    shades = np.linspace(0.75, 0.95, 21, dtype=np.float32)
    shaded = palette[None] * shades[:, None, None]  # (shade, class, RGB)
    nearest = []
    for seed in SEEDS:
        _, _, out, _, mask = _paste("near_class", seed)
        for obj in _objects(mask):
            pixels = out[obj].astype(np.float32)
            distance = np.linalg.norm(pixels[:, None, None] - shaded[None], axis=-1).min(1)
            per_class = np.median(distance, axis=0)  # median pixel distance to each class
            assert per_class.min() <= 45.0  # two colors 10-40 from one shaded class color
            nearest.append((names[int(per_class.argmin())], float(pixels.mean())))
    assert any(name == "building" and brightness < 90 for name, brightness in nearest)


def test_textured_objects_are_textured() -> None:
    spreads = []
    for seed in SEEDS:
        _, _, out, _, mask = _paste("textured", seed)
        spreads += [float(out[obj].astype(np.float32).std(axis=0).max()) for obj in _objects(mask)]
    assert np.median(spreads) > 10.0  # well above the pixel noise (sigma 4)


def test_objects_keep_off_void_pixels() -> None:
    for seed in SEEDS:
        _, labels, _, new_labels, mask = _paste("crowded", seed, void_objects=True)
        void = labels == CLASSES.ignore_index
        assert void.any() and not (mask & void).any()
        assert np.array_equal(new_labels == CLASSES.ignore_index, mask | void)


def test_without_ground_objects_stand_low() -> None:
    image = np.full((64, 128, 3), 100, np.uint8)
    labels = np.full((64, 128), CLASSES.names.index("sky"), np.uint8)
    mask = paste_hard_unseen_objects(image, labels, 0, "small")[2]
    rows = np.flatnonzero(mask.any(axis=1))
    assert mask.any() and rows.max() >= int(0.6 * 64)


@pytest.mark.parametrize("kind", TEXTURE_KINDS)
def test_texture_fields(kind: str) -> None:
    field = texture_field((40, 60), kind, np.random.default_rng(0))
    assert field.shape == (40, 60) and field.dtype == np.float32
    assert field.min() >= 0.0 and field.max() <= 1.0 and field.std() > 0.1
    assert np.array_equal(field, texture_field((40, 60), kind, np.random.default_rng(0)))


def test_bad_inputs_raise() -> None:
    image, labels = synthetic_street_scene(64, 128, seed=0)
    with pytest.raises(ConfigError, match="unknown unseen-object scenario 'huge'"):
        paste_hard_unseen_objects(image, labels, 0, "huge")
    with pytest.raises(InvalidImageError, match="labels must be"):
        paste_hard_unseen_objects(image, labels[:10], 0, "small")
    with pytest.raises(InvalidImageError, match="uint8 RGB"):
        paste_hard_unseen_objects(image.astype(np.float32), labels, 0, "small")
    with pytest.raises(InvalidImageError, match="at least 32x32"):
        paste_hard_unseen_objects(image[:20], labels[:20], 0, "small")
    names = tuple("ground" if n == "sidewalk" else n for n in CLASSES.names)
    no_sidewalk = dataclasses.replace(CLASSES, names=names)
    with pytest.raises(ConfigError, match="lacks the classes"):
        paste_hard_unseen_objects(image, labels, 0, "off_road", class_set=no_sidewalk)
    with pytest.raises(ValueError, match="unknown texture kind"):
        texture_field((8, 8), "plaid", np.random.default_rng(0))


def test_paste_unseen_objects_marks_them_ignored_and_in_the_mask() -> None:
    from vltseg_ros.data.unseen_objects import paste_unseen_objects

    image, labels = synthetic_street_scene(256, 512, seed=3)
    out, new_labels, mask = paste_unseen_objects(image, labels, seed=1, count=3)
    again = paste_unseen_objects(image, labels, seed=1, count=3)
    assert all(np.array_equal(a, b) for a, b in zip((out, new_labels, mask), again, strict=True))
    assert out.shape == image.shape and out.dtype == np.uint8 and mask.dtype == bool
    assert np.array_equal(new_labels == 255, mask)
    assert np.array_equal(new_labels[~mask], labels[~mask]) and np.array_equal(
        out[~mask], image[~mask]
    )
    assert 0.02 < mask.mean() < 0.2  # three objects of a few % each
    changed = (out != image).any(axis=-1)
    assert changed[mask].mean() > 0.99 and not changed[~mask].any()
    # they stand on the road: the feet (lowest rows of the mask) are mostly on road pixels
    bottom = np.flatnonzero(mask.any(axis=1)).max()
    feet = labels[bottom - 2 : bottom + 1][mask[bottom - 2 : bottom + 1]]
    assert (feet == CLASSES.names.index("road")).mean() > 0.5
    # their colors are unlike every class color (at every shading of the scenes)
    palette = np.asarray(CLASSES.palette, dtype=np.float32)
    shaded = np.concatenate([palette * s for s in (0.75, 0.875, 1.0)])
    pixels = out[mask].astype(np.float32)
    distance = np.linalg.norm(pixels[:, None, :] - shaded[None], axis=-1).min(axis=1)
    assert np.median(distance) > 60
    unchanged = paste_unseen_objects(image, labels, seed=1, count=0)
    assert np.array_equal(unchanged[0], image) and not unchanged[2].any()
    with pytest.raises(ValueError, match="labels must be"):
        paste_unseen_objects(image, labels[:10], seed=1)
    with pytest.raises(ValueError, match="count"):
        paste_unseen_objects(image, labels, seed=1, count=-1)
