"""Frame corruptions and domain shifts (vltseg_ros.data.corruptions)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vltseg_ros.data.corruptions import SHIFT_KINDS, shift_domain
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.errors import ConfigError, InvalidImageError

STRENGTHS = (0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return synthetic_street_scene(128, 256, seed=5)[0]


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean square difference of two uint8 images, in grey levels."""
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _sharpness(x: np.ndarray) -> float:
    """Mean absolute horizontal gradient of the grey image."""
    return float(np.abs(np.diff(x.astype(np.float64).mean(axis=2), axis=1)).mean())


def test_every_kind_is_listed_once() -> None:
    assert SHIFT_KINDS == (
        "noise",
        "blur",
        "motion_blur",
        "contrast",
        "jpeg",
        "color_cast",
        "fog",
        "night",
    )


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_the_distance_from_the_clean_image_grows_with_strength(kind, image) -> None:
    unchanged = shift_domain(image, kind, 0.0)
    assert np.array_equal(unchanged, image) and unchanged is not image
    shifted = [shift_domain(image, kind, s, seed=3) for s in STRENGTHS]
    assert all(x.dtype == np.uint8 and x.shape == image.shape for x in shifted)
    distances = [_distance(x, image) for x in shifted]
    assert distances[0] > 1.0, distances  # a quarter strength already changes the frame
    assert all(a < b for a, b in itertools.pairwise(distances)), distances


@pytest.mark.parametrize("kind", SHIFT_KINDS)
def test_a_seed_gives_the_same_frame(kind, image) -> None:
    first = shift_domain(image, kind, 0.6, seed=7)
    assert np.array_equal(first, shift_domain(image, kind, 0.6, seed=7))
    other = shift_domain(image, kind, 0.6, seed=8)
    assert np.array_equal(first, other) == (kind not in ("noise", "night"))


def test_each_kind_does_what_it_says(image) -> None:
    base = image.astype(np.float64)
    strong = {kind: shift_domain(image, kind, 1.0, seed=1) for kind in SHIFT_KINDS}
    grey = base.mean()
    assert np.std(strong["noise"].astype(np.float64) - base) > 30  # 50 before clipping
    assert _sharpness(strong["blur"]) < 0.5 * _sharpness(image)
    # a horizontal blur: horizontal edges stay, vertical ones (poles) smear
    rows = np.abs(np.diff(strong["motion_blur"].astype(np.float64), axis=1)).mean()
    cols = np.abs(np.diff(strong["motion_blur"].astype(np.float64), axis=0)).mean()
    assert rows < 0.4 * np.abs(np.diff(base, axis=1)).mean() and cols > rows
    contrast = strong["contrast"].astype(np.float64)
    assert contrast.std() == pytest.approx(0.1 * base.std(), abs=1.0)
    assert contrast.mean() == pytest.approx(grey, abs=1.0)
    assert _distance(strong["jpeg"], image) > _distance(shift_domain(image, "jpeg", 0.1), image)
    means = strong["color_cast"].astype(np.float64).mean(axis=(0, 1)) / base.mean(axis=(0, 1))
    assert means[0] > 1.3 and means[1] == pytest.approx(1.0, abs=0.01) and means[2] < 0.5
    assert strong["night"].mean() < 0.3 * grey
    fog = np.array([200, 202, 206], dtype=np.float64)
    top, bottom = strong["fog"][:10].astype(np.float64), strong["fog"][-10:].astype(np.float64)
    assert np.abs(top - fog).mean() < np.abs(bottom - fog).mean()  # denser far away
    assert np.abs(strong["fog"] - fog).mean() < np.abs(base - fog).mean()


@pytest.mark.parametrize("kind", ["night", "fog"])
def test_night_darkens_and_fog_greys_more_with_strength(kind, image) -> None:
    weak, strong = shift_domain(image, kind, 0.3), shift_domain(image, kind, 1.0)
    base = image.astype(np.float32)
    if kind == "night":
        assert base.mean() > weak.mean() > strong.mean() and strong.mean() < 0.3 * base.mean()
    else:  # toward bright grey, and flatter
        grey = np.array([200, 202, 206], dtype=np.float32)
        gap = [np.abs(x.astype(np.float32) - grey).mean() for x in (image, weak, strong)]
        assert gap[0] > gap[1] > gap[2]
        assert np.abs(strong.std(axis=(0, 1))).mean() < np.abs(base.std(axis=(0, 1))).mean()


def test_bad_input_is_refused(image) -> None:
    with pytest.raises(ConfigError, match="strength"):
        shift_domain(image, "fog", 1.5)
    with pytest.raises(ConfigError, match="strength"):
        shift_domain(image, "blur", -0.1)
    with pytest.raises(ConfigError, match="kind must be one of noise, blur"):
        shift_domain(image, "rain", 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidImageError, match="uint8"):
        shift_domain(image.astype(np.float32), "noise", 0.5)
    with pytest.raises(InvalidImageError, match="uint8"):
        shift_domain(image[..., 0], "jpeg", 0.5)
