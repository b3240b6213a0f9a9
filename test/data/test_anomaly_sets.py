"""Each anomaly set layout, written small in tmp_path, pairs images with labels and reads
truth 0 / 1 / 255; missing folders and labels give DatasetErrors naming them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test.data.layouts import H, W, ids_grid, image_rgb, write_grey, write_image
from vltseg_ros.data.anomaly_sets import (
    ANOMALY_DATASET_NAMES,
    AnomalySample,
    anomaly_samples,
    load_anomaly_sample,
    parse_anomaly_spec,
    read_anomaly_image,
    read_anomaly_truth,
)
from vltseg_ros.errors import DatasetError


def _write_pil(path: Path, rgb: np.ndarray, **options) -> Path:
    """An image through Pillow (WebP, or a PNG in a given mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **options)
    return path


def _fishyscapes(root: Path, bases: list[str], truth: np.ndarray) -> None:
    for i, base in enumerate(bases):
        write_image(root / "laf_images" / f"{base}_leftImg8bit.png", image_rgb(i))
        label = root / "fishyscapes_lostandfound" / f"{i:04d}_{base}_labels.png"
        if i == 0:  # an RGB label: the first channel holds the values
            rgb = np.stack([truth, np.full_like(truth, 9), np.full_like(truth, 200)], axis=-1)
            _write_pil(label, rgb.astype(np.uint8))
        else:
            write_grey(label, truth)


def test_fishyscapes_laf_pairs_labels_with_images_by_name(tmp_path):
    truth = ids_grid([0, 1, 255])
    bases = ["04_Maurener_Weg_8_000000_000030", "01_Hanns_Klemm_Str_45_000001_000080"]
    _fishyscapes(tmp_path, bases, truth)
    samples = anomaly_samples("fishyscapes_laf", tmp_path)
    assert [s.name for s in samples] == [f"{b}_leftImg8bit" for b in bases]  # label order
    assert samples[0] == AnomalySample(
        tmp_path / "laf_images" / f"{bases[0]}_leftImg8bit.png",
        tmp_path / "fishyscapes_lostandfound" / f"0000_{bases[0]}_labels.png",
        f"{bases[0]}_leftImg8bit",
        "fishyscapes_laf",
    )
    for i, sample in enumerate(samples):
        image, labels = load_anomaly_sample(sample)
        assert labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, truth)
        np.testing.assert_array_equal(image, image_rgb(i))  # RGB order, lossless PNG


def test_fishyscapes_laf_label_without_image(tmp_path):
    _fishyscapes(tmp_path, ["01_a_000001_000002"], ids_grid([0, 1]))
    (tmp_path / "laf_images" / "01_a_000001_000002_leftImg8bit.png").unlink()
    with pytest.raises(DatasetError, match=r"1 Fishyscapes label\(s\) have no image.*laf_images"):
        anomaly_samples("fishyscapes_laf", tmp_path)
    (tmp_path / "laf_images").rmdir()
    with pytest.raises(DatasetError, match=r"folder .*laf_images does not exist; expected layout"):
        anomaly_samples("fs_laf", tmp_path)


def test_road_anomaly_reads_frame_list_and_maps_2_to_anomaly(tmp_path):
    names = ["animals10_Cow.jpg", "zebra_crossing.png"]
    (tmp_path / "frame_list.json").write_text(json.dumps(names))
    for i, name in enumerate(names):
        write_image(tmp_path / "frames" / name, image_rgb(i))
        label_dir = tmp_path / "frames" / f"{Path(name).stem}.labels"
        write_grey(label_dir / "labels_semantic.png", ids_grid([0, 1, 2, 0]))
    samples = anomaly_samples("road_anomaly", tmp_path)
    assert [s.image.name for s in samples] == names  # frame_list.json's order
    assert samples[0].label == tmp_path / "frames/animals10_Cow.labels/labels_semantic.png"
    np.testing.assert_array_equal(read_anomaly_truth(samples[0]), ids_grid([0, 1, 1, 0]))
    assert read_anomaly_image(samples[0]).shape == (H, W, 3)


def test_road_anomaly_missing_label_and_missing_list(tmp_path):
    (tmp_path / "frame_list.json").write_text(json.dumps(["a.jpg"]))
    write_image(tmp_path / "frames" / "a.jpg", image_rgb(0))
    with pytest.raises(DatasetError, match=r"have no label file.*a\.labels/labels_semantic\.png"):
        anomaly_samples("road_anomaly", tmp_path)
    (tmp_path / "frame_list.json").write_text(json.dumps(["b.jpg"]))
    with pytest.raises(DatasetError, match=r"frame_list.json names 1 image.*b\.jpg"):
        anomaly_samples("road_anomaly", tmp_path)
    (tmp_path / "frame_list.json").unlink()
    with pytest.raises(DatasetError, match=r"frame_list.json does not exist; expected layout"):
        anomaly_samples("road_anomaly", tmp_path)


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("road_anomaly21", ".jpg"), ("road_anomaly21", ".png"), ("road_obstacle21", ".webp")],
)
def test_segment_me_if_you_can_reads_validation_images_only(tmp_path, name, suffix):
    truth = ids_grid([0, 1, 255, 0])
    stems = ["validation0001", "validation0002"]
    for i, stem in enumerate([*stems, "test0001"]):
        image = tmp_path / "images" / f"{stem}{suffix}"
        if suffix == ".webp":
            _write_pil(image, image_rgb(i), lossless=True)
        else:
            write_image(image, image_rgb(i))
    for stem in stems:
        write_grey(tmp_path / "labels_masks" / f"{stem}_labels_semantic.png", truth)
    samples = anomaly_samples(name, tmp_path)
    assert [s.name for s in samples] == stems
    assert {s.dataset for s in samples} == {name}
    image, labels = load_anomaly_sample(samples[1])
    np.testing.assert_array_equal(labels, truth)
    assert image.shape == (H, W, 3)
    if suffix != ".jpg":  # lossless: the exact pixels, in RGB order
        np.testing.assert_array_equal(image, image_rgb(1))


def test_segment_me_if_you_can_errors(tmp_path):
    write_image(tmp_path / "images" / "validation0001.jpg", image_rgb(0))
    with pytest.raises(DatasetError, match=r"folder .*labels_masks does not exist"):
        anomaly_samples("road_anomaly21", tmp_path)
    (tmp_path / "labels_masks").mkdir()
    with pytest.raises(
        DatasetError, match=r"have no label file.*labels_masks/validation0001_labels_semantic"
    ):
        anomaly_samples("road_anomaly21", tmp_path)
    (tmp_path / "images" / "validation0001.jpg").rename(tmp_path / "images" / "test0001.jpg")
    with pytest.raises(DatasetError, match=r"no validation images"):
        anomaly_samples("ra21", tmp_path)


def test_undefined_label_values_become_void_with_a_warning(tmp_path, caplog):
    image = write_image(tmp_path / "images" / "validation0001.png", image_rgb(0))
    label = write_grey(tmp_path / "labels_masks" / "x.png", ids_grid([0, 1, 2, 255]))
    with caplog.at_level(logging.WARNING, logger="vltseg_ros.data.anomaly_sets"):
        truth = read_anomaly_truth(AnomalySample(image, label, "x", "road_obstacle21"))
    np.testing.assert_array_equal(truth, ids_grid([0, 1, 255, 255]))
    assert "values [2]" in caplog.text


def test_label_of_another_size_is_refused(tmp_path):
    image = write_image(tmp_path / "a.png", image_rgb(0))
    label = write_grey(tmp_path / "a_labels.png", np.zeros((H + 1, W), np.uint8))
    with pytest.raises(DatasetError, match=r"is 8x7 \(WxH\) but its image .* is 8x6"):
        load_anomaly_sample(AnomalySample(image, label, "a", "fishyscapes_laf"))
    with pytest.raises(DatasetError, match=r"fishyscapes_laf label: image .*missing.png"):
        read_anomaly_truth(AnomalySample(image, tmp_path / "missing.png", "a", "fishyscapes_laf"))


def test_parse_anomaly_spec_and_names(tmp_path):
    assert ANOMALY_DATASET_NAMES == (
        "fishyscapes_laf",
        "road_anomaly",
        "road_anomaly21",
        "road_obstacle21",
    )
    assert parse_anomaly_spec(f"RoadAnomaly21:{tmp_path}") == ("road_anomaly21", tmp_path)
    assert parse_anomaly_spec("ro21: /data/obstacles ") == (
        "road_obstacle21",
        Path("/data/obstacles"),
    )
    with pytest.raises(DatasetError, match="not NAME:ROOT"):
        parse_anomaly_spec("road_anomaly")
    with pytest.raises(DatasetError, match="unknown anomaly data set 'lost_and_found'"):
        parse_anomaly_spec("lost_and_found:/data")
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        anomaly_samples("road_anomaly", tmp_path / "absent")
