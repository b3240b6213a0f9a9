"""The reference augmentation: sizes, label integrity, cat_max_ratio, flip, determinism,
normalization; and the keyed sampler that makes it resumable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from test.data import layouts
from vltseg_ros.config.model_config import Normalization
from vltseg_ros.data import (
    EvalTransform,
    InfiniteKeyedSampler,
    PhotoMetricDistortion,
    TrainTransform,
    build_dataset,
)
from vltseg_ros.data.transforms import random_crop_origin
from vltseg_ros.errors import ConfigError

NORM = Normalization()


def _scene(height: int = 40, width: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = rng.choice(np.array([0, 5, 13, 255], np.uint8), (height, width))
    return image, labels


def test_output_is_exactly_the_crop_size_with_labels_from_the_input():
    image, labels = _scene()
    transform = TrainTransform((90, 50), (32, 48), NORM)
    for key in range(5):
        out_image, out_labels = transform(image, labels, key)
        assert out_image.shape == (3, 32, 48) and out_image.dtype == torch.float32
        assert out_labels.shape == (32, 48) and out_labels.dtype == torch.int64
        assert set(out_labels.unique().tolist()) <= {0, 5, 13, 255}


def test_small_images_are_padded_with_ignore_labels_and_zero():
    image, labels = _scene(10, 12)
    labels[:] = 5
    transform = TrainTransform((12, 10), 16, NORM, photometric=None, flip_prob=0.0)
    out_image, out_labels = transform(image, labels, 0)
    assert out_image.shape == (3, 16, 16)
    assert (out_labels[:10, :12] == 5).all() and (out_labels[10:] == 255).all()
    assert (out_labels[:, 12:] == 255).all() and (out_image[:, 10:] == 0).all()


def test_resize_changes_the_scale_with_nearest_labels():
    image, labels = _scene(20, 30)
    transform = TrainTransform((60, 40), (40, 60), NORM, photometric=None, flip_prob=0.0)
    out_image, out_labels = transform.augment(image, labels, np.random.default_rng(0))
    assert out_image.shape == (40, 60, 3) and out_labels.shape == (40, 60)
    np.testing.assert_array_equal(out_labels, np.repeat(np.repeat(labels, 2, 0), 2, 1))


def _largest_share(labels: np.ndarray) -> float:
    counts = np.bincount(labels[labels != 255].ravel(), minlength=256)
    return counts.max() / counts.sum()


def test_cat_max_ratio_rejects_crops_dominated_by_one_class():
    labels = np.zeros((100, 100), np.uint8)
    labels[:, 50:] = 1  # a 50x50 crop is fine only when it straddles x=50 near its middle
    image = np.zeros((100, 100, 3), np.uint8)

    def shares(ratio: float) -> list[float]:
        transform = TrainTransform((100, 100), 50, NORM, cat_max_ratio=ratio, photometric=None)
        return [
            _largest_share(transform.augment(image, labels, np.random.default_rng(s))[1])
            for s in range(100)
        ]

    assert sum(share < 0.75 for share in shares(0.75)) >= 98  # fails only if 10 tries all fail
    assert sum(share < 0.75 for share in shares(1.0)) < 70  # unconstrained: about half


def test_cat_max_ratio_ignores_ignored_pixels():
    labels = np.full((100, 100), 255, np.uint8)
    labels[::4, ::4] = 0
    labels[2::4, 2::4] = 1  # every crop: 0 and 1 at 50 % each of the labeled pixels
    origin = random_crop_origin(labels, (50, 50), np.random.default_rng(7), 0.75)
    fresh = np.random.default_rng(7)
    assert origin == (fresh.integers(51), fresh.integers(51))  # first crop accepted


def test_flip_moves_image_and_labels_together():
    columns = np.arange(64, dtype=np.uint8)
    image = np.repeat(np.repeat(columns[None, :, None], 8, 0), 3, 2)
    labels = np.repeat((columns // 4)[None], 8, 0)
    flipped = TrainTransform((64, 8), (8, 64), NORM, flip_prob=1.0, photometric=None)
    out_image, out_labels = flipped.augment(image, labels, np.random.default_rng(0))
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_labels, labels[:, ::-1])
    kept = TrainTransform((64, 8), (8, 64), NORM, flip_prob=0.0, photometric=None)
    np.testing.assert_array_equal(kept.augment(image, labels, np.random.default_rng(0))[1], labels)


def test_same_seed_and_key_give_the_same_sample():
    image, labels = _scene()
    first = TrainTransform((60, 40), 24, NORM, seed=3)
    second = TrainTransform((60, 40), 24, NORM, seed=3)
    for key in (0, 11):
        a, b = first(image, labels, key), second(image, labels, key)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    outputs = {first(image, labels, key)[0].sum().item() for key in range(6)}
    assert len(outputs) > 1  # keys draw different augmentations
    generator = first(image, labels, np.random.default_rng([3, 11]))
    assert torch.equal(generator[0], first(image, labels, 11)[0])


def test_normalization_is_exact_on_a_constant_image():
    image = np.full((4, 6, 3), 100, np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    expected = (np.float32(100) - np.float32(NORM.mean)) / np.float32(NORM.std)
    for transform in (
        EvalTransform(NORM),
        TrainTransform((6, 4), (4, 6), NORM, photometric=None, cat_max_ratio=1.0),
    ):
        out_image, out_labels = transform(image, labels, 0)
        for channel in range(3):
            assert (out_image[channel] == float(expected[channel])).all()
        assert out_labels.dtype == torch.int64


def test_photometric_distortion_keeps_grey_grey_within_the_brightness_range():
    grey = np.full((4, 4, 3), 128, np.uint8)
    brightness_only = PhotoMetricDistortion(
        contrast_range=(1.0, 1.0), hue_delta=0, saturation_range=(1.0, 1.0)
    )
    values = set()
    for seed in range(40):
        out = brightness_only(grey, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and (out == out[0, 0, 0]).all()
        values.add(int(out[0, 0, 0]))
    assert 128 in values and len(values) > 5 and min(values) >= 96 and max(values) <= 160


def test_photometric_distortion_changes_colors():
    image, _ = _scene()
    out = PhotoMetricDistortion()(image, np.random.default_rng(1))
    changed = [
        not np.array_equal(out, PhotoMetricDistortion()(image, np.random.default_rng(s)))
        for s in range(2, 6)
    ]
    assert out.shape == image.shape and out.dtype == np.uint8 and any(changed)


def test_reference_settings_and_validation():
    gta = TrainTransform.reference("gta5", NORM)
    assert (gta.scale, gta.crop_size, gta.cat_max_ratio) == ((1280, 720), (512, 512), 0.75)
    assert TrainTransform.reference("cityscapes").scale == (2048, 1024)
    with pytest.raises(ConfigError, match="kitti"):
        TrainTransform.reference("kitti")
    with pytest.raises(ConfigError):
        TrainTransform((0, 10), 8)
    with pytest.raises(ConfigError):
        TrainTransform((10, 10), 8, cat_max_ratio=1.5)


def test_keyed_sampler_passes_and_resume():
    sampler = InfiniteKeyedSampler(5, seed=1)
    drawn = list(itertools.islice(sampler, 15))
    assert [key for _, key in drawn] == list(range(15))
    for start in (0, 5, 10):
        assert sorted(index for index, _ in drawn[start : start + 5]) == list(range(5))
    resumed = list(itertools.islice(InfiniteKeyedSampler(5, seed=1, start=7), 8))
    assert resumed == drawn[7:]


def test_dataloader_batches_from_a_dataset_with_the_train_transform(tmp_path):
    layouts.gta5(tmp_path, {f"{i:05d}": layouts.ids_grid([7, 26, 8]) for i in range(3)})
    transform = TrainTransform((16, 12), 8, NORM)
    dataset = build_dataset("gta5", tmp_path, "all", transform=transform)
    loader = DataLoader(dataset, batch_size=2, sampler=InfiniteKeyedSampler(len(dataset)))
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 8, 8) and batch["labels"].shape == (2, 8, 8)
    assert set(batch["labels"].unique().tolist()) <= {0, 1, 13}
    assert batch["domain"] == ["gta5", "gta5"] and len(batch["name"]) == 2
    again = next(iter(DataLoader(dataset, batch_size=2, sampler=InfiniteKeyedSampler(3))))
    assert torch.equal(batch["image"], again["image"])
