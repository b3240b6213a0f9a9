"""Each data set layout, written small in tmp_path, reads back with the right train ids."""

from __future__ import annotations

import numpy as np
import pytest

from test.data import layouts
from test.data.layouts import ids_grid
from vltseg_ros.data import build_dataset
from vltseg_ros.errors import DatasetError


def _single(dataset):
    assert len(dataset) == 1
    return dataset[0]


def test_cityscapes_label_ids_are_mapped_with_cityscapesscripts(tmp_path):
    ids = ids_grid([7, 26, 0, 8, 24, 9])  # road, car, unlabeled, sidewalk, person, parking
    layouts.cityscapes(tmp_path, "val", {"aachen_000000_000019": {"labelIds": ids}})
    item = _single(build_dataset("cityscapes", tmp_path, "val"))
    expected = ids_grid([0, 13, 255, 1, 11, 255])
    assert item["labels"].dtype == np.uint8
    np.testing.assert_array_equal(item["labels"], expected)
    assert item["image"].shape == (layouts.H, layouts.W, 3)
    assert item["image"].dtype == np.uint8
    np.testing.assert_array_equal(item["image"], layouts.image_rgb(0))  # RGB order kept
    assert item["name"] == "aachen_000000_000019_leftImg8bit"
    assert item["domain"] == "cityscapes"


def test_cityscapes_prefers_label_train_ids(tmp_path):
    train_ids = ids_grid([3, 4, 255])
    frames = {"bonn_000001_000002": {"labelIds": ids_grid([7]), "labelTrainIds": train_ids}}
    layouts.cityscapes(tmp_path, "train", frames)
    np.testing.assert_array_equal(
        _single(build_dataset("cityscapes", tmp_path, "train"))["labels"], train_ids
    )


def test_acdc_samples_know_their_condition(tmp_path):
    for i, condition in enumerate(("fog", "night", "snow")):
        layouts.acdc(tmp_path, "val", condition, f"GOPR_frame_{i:06d}", ids_grid([i, 255]))
    dataset = build_dataset("acdc", tmp_path, "val", conditions=["night", "fog"])
    assert [item["domain"] for item in dataset] == ["acdc/night", "acdc/fog"]
    assert dataset.domains == ["acdc/fog", "acdc/night"]
    np.testing.assert_array_equal(dataset[0]["labels"], ids_grid([1, 255]))
    with pytest.raises(DatasetError, match=r"rain"):  # all four by default; rain is absent
        build_dataset("acdc", tmp_path, "val")
    with pytest.raises(DatasetError, match="unknown ACDC condition"):
        build_dataset("acdc", tmp_path, "val", conditions=["sunny"])


def test_gta5_palette_label_ids(tmp_path):
    layouts.gta5(tmp_path, {"00001": ids_grid([7, 26, 0, 33, 34])})
    item = _single(build_dataset("gta5", tmp_path, "all"))
    np.testing.assert_array_equal(item["labels"], ids_grid([0, 13, 255, 18, 255]))
    assert item["domain"] == "gta5"
    assert item["name"] == "00001"


def test_gta5_split_file_and_converted_labels(tmp_path):
    layouts.gta5(tmp_path, {"00001": ids_grid([7]), "00002": ids_grid([26])})
    layouts.write_grey(tmp_path / "labels" / "00002_labelTrainIds.png", ids_grid([5]))
    # an indented comment is a comment too, not an image name
    (tmp_path / "val.txt").write_text("# held out\n  # 00001.png (not in val)\n00002.png\n")
    item = _single(build_dataset("gta", tmp_path, "val"))
    np.testing.assert_array_equal(item["labels"], ids_grid([5]))  # train ids preferred
    assert len(build_dataset("gta5", tmp_path, "train")) == 2  # no train.txt: every image
    with pytest.raises(DatasetError, match=r"test\.txt"):
        build_dataset("gta5", tmp_path, "test")


def test_synthia_16_bit_first_channel(tmp_path):
    # road, car, pedestrian, lanemarking, void, wall
    layouts.synthia(tmp_path, "0000001", ids_grid([3, 8, 10, 22, 0, 21]))
    item = _single(build_dataset("synthia", tmp_path, "all"))
    np.testing.assert_array_equal(item["labels"], ids_grid([0, 13, 11, 255, 255, 3]))
    assert item["domain"] == "synthia"


def test_bdd100k_both_layouts(tmp_path):
    train_ids = ids_grid([0, 18, 255, 10])
    layouts.bdd100k(tmp_path / "new", "val", "7d2f7975-e0c1c5a7", train_ids)
    layouts.bdd100k(tmp_path / "old", "val", "7d2f7975-e0c1c5a7", train_ids, old=True)
    for root in (tmp_path / "new", tmp_path / "old"):
        item = _single(build_dataset("bdd100k", root, "val"))
        np.testing.assert_array_equal(item["labels"], train_ids)
        assert item["image"].shape == (layouts.H, layouts.W, 3)  # JPEG read as RGB
        assert item["domain"] == "bdd100k"


def test_mapillary_v12_ids(tmp_path):
    # road, lane marking, car, bicyclist, unlabeled, crosswalk-plain, traffic-sign back
    ids = ids_grid([13, 24, 55, 20, 65, 8, 49])
    layouts.mapillary(tmp_path, "validation", "0035fkbjWljhaftpVM37-g", ids)
    for split in ("validation", "val"):
        item = _single(build_dataset("mapillary", tmp_path, split))
        np.testing.assert_array_equal(item["labels"], ids_grid([0, 0, 13, 12, 255, 255, 255]))
        assert item["domain"] == "mapillary"


def test_missing_label_names_the_image(tmp_path):
    layouts.gta5(tmp_path, {"00001": ids_grid([7])})
    layouts.write_image(tmp_path / "images" / "00002.png", layouts.image_rgb(9))
    with pytest.raises(DatasetError, match=r"00002\.png.*labels.00002\.png"):
        build_dataset("gta5", tmp_path, "all")


def test_missing_cityscapes_label_names_the_image(tmp_path):
    layouts.cityscapes(tmp_path, "val", {"ulm_000001_000002": {}})
    (tmp_path / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"ulm_000001_000002_leftImg8bit\.png.*_gtFine_label"):
        build_dataset("cityscapes", tmp_path, "val")


def test_size_mismatch_names_the_label(tmp_path):
    layouts.bdd100k(tmp_path, "train", "abc", ids_grid([1]))
    label = tmp_path / "labels" / "sem_seg" / "masks" / "train" / "abc.png"
    layouts.write_grey(label, np.zeros((layouts.H + 1, layouts.W), np.uint8))
    dataset = build_dataset("bdd100k", tmp_path, "train")
    with pytest.raises(DatasetError, match=rf"{label}.*8x7.*8x6"):
        dataset[0]


def test_unreadable_files_are_named(tmp_path):
    layouts.bdd100k(tmp_path, "train", "abc", ids_grid([1]))
    label = tmp_path / "labels" / "sem_seg" / "masks" / "train" / "abc.png"
    label.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=str(label)):
        build_dataset("bdd100k", tmp_path, "train")[0]
    layouts.synthia(tmp_path / "s", "1", ids_grid([3]))
    (tmp_path / "s" / "GT" / "LABELS" / "1.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"LABELS.1\.png"):
        build_dataset("synthia", tmp_path / "s", "all")[0]


def test_missing_folder_shows_the_layout(tmp_path):
    with pytest.raises(DatasetError, match=r"leftImg8bit.*expected layout.*gtFine"):
        build_dataset("cityscapes", tmp_path, "train")
    with pytest.raises(DatasetError, match=r"images/10k/<split>"):
        build_dataset("bdd100k", tmp_path, "val")
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("gta5", tmp_path / "nowhere", "all")
