"""The synthetic street scenes (vltseg_ros.data.scenes): labels, void and unseen objects,
domain shifts."""

from __future__ import annotations

import numpy as np
import pytest

from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.data.scenes import synthetic_street_scene

CLASSES = load_class_set("cityscapes")


def test_synthetic_scene_is_deterministic_and_labelled() -> None:
    image, labels = synthetic_street_scene(256, 512, seed=7)
    again, labels_again = synthetic_street_scene(256, 512, seed=7)
    assert np.array_equal(image, again) and np.array_equal(labels, labels_again)
    assert image.shape == (256, 512, 3) and image.dtype == np.uint8
    assert labels.shape == (256, 512) and labels.dtype == np.uint8
    present = {CLASSES.names[i] for i in np.unique(labels)}
    assert {"road", "sidewalk", "sky", "car"} <= present
    assert labels[0].tolist().count(CLASSES.names.index("sky")) > 0  # sky on top
    assert labels[-1, 256] == CLASSES.names.index("road")  # road at the bottom center
    # each class is drawn near its palette color
    for class_id in np.unique(labels):
        mean = image[labels == class_id].mean(0)
        assert np.abs(mean - np.array(CLASSES.palette[class_id]) * 0.875).max() < 45
    assert not np.array_equal(synthetic_street_scene(256, 512, seed=8)[1], labels)
    with pytest.raises(ValueError, match="at least 32"):
        synthetic_street_scene(16, 512)


def test_void_objects_are_ignored_and_stand_in_the_same_scene() -> None:
    _, plain_labels = synthetic_street_scene(256, 512, seed=7)
    _, labels = synthetic_street_scene(256, 512, seed=7, void_objects=True)
    void = labels == CLASSES.ignore_index
    assert not (plain_labels == CLASSES.ignore_index).any()
    assert 0.002 <= void.mean() <= 0.06  # 1-4 objects of 0.2-1.5 % each, overlaps possible
    assert np.array_equal(labels[~void], plain_labels[~void])  # the same scene around them
    horizon = np.argmax((plain_labels == CLASSES.names.index("sidewalk")).any(1))
    assert not void[:horizon].any()  # they stand below the horizon


def test_paste_unseen_objects_marks_them_ignored_and_in_the_mask() -> None:
    from vltseg_ros.data.scenes import paste_unseen_objects

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


@pytest.mark.parametrize("kind", ["night", "fog"])
def test_shift_domain(kind: str) -> None:
    from vltseg_ros.data.scenes import shift_domain

    image, _ = synthetic_street_scene(128, 256, seed=5)
    assert np.array_equal(shift_domain(image, kind, 0.0), image)
    weak, strong = shift_domain(image, kind, 0.3), shift_domain(image, kind, 1.0)
    assert strong.dtype == np.uint8 and strong.shape == image.shape
    base = image.astype(np.float32)
    if kind == "night":
        assert base.mean() > weak.mean() > strong.mean() and strong.mean() < 0.3 * base.mean()
    else:  # toward bright grey, more at the top (far away) than at the bottom
        grey = np.array([200, 202, 206], dtype=np.float32)
        gap = [np.abs(x.astype(np.float32) - grey).mean() for x in (image, weak, strong)]
        assert gap[0] > gap[1] > gap[2]
        top, bottom = strong[:10].astype(np.float32), strong[-10:].astype(np.float32)
        assert np.abs(top - grey).mean() < np.abs(bottom - grey).mean()
        assert np.abs(strong.std(axis=(0, 1))).mean() < np.abs(base.std(axis=(0, 1))).mean()
    with pytest.raises(ValueError, match="strength"):
        shift_domain(image, kind, 1.5)
    with pytest.raises(ValueError, match="kind"):
        shift_domain(image, "rain", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        shift_domain(image.astype(np.float32), kind, 0.5)
