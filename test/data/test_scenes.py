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
