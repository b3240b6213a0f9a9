"""Data set names, the NAME:ROOT form, and the label-id lookup tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test.data import layouts
from vltseg_ros.bag.frames import cityscapes_to_train_ids
from vltseg_ros.data import DATASET_NAMES, build_dataset, label_maps, parse_dataset_spec
from vltseg_ros.data.dataset import read_label_file
from vltseg_ros.data.label_maps import (
    MAPILLARY_V12_TO_TRAIN_ID,
    SYNTHIA_TO_TRAIN_ID,
    apply_lut,
    cityscapes_lut,
    mapillary_lut,
    synthia_lut,
)
from vltseg_ros.errors import DatasetError, VLTSegError


def test_parse_dataset_spec():
    assert parse_dataset_spec("acdc:/data/acdc") == ("acdc", Path("/data/acdc"))
    assert parse_dataset_spec("GTA:data/gta") == ("gta5", Path("data/gta"))
    assert parse_dataset_spec("bdd100k:C:/x") == ("bdd100k", Path("C:/x"))  # first colon splits
    for bad in ("cityscapes", "cityscapes:", "kitti:/data/kitti"):
        with pytest.raises(DatasetError, match="cityscapes"):
            parse_dataset_spec(bad)


def test_build_dataset_rejects_unknown_names_and_stray_conditions(tmp_path):
    assert set(DATASET_NAMES) == {"cityscapes", "gta5", "synthia", "acdc", "bdd100k", "mapillary"}
    with pytest.raises(DatasetError, match="unknown data set 'kitti'"):
        build_dataset("kitti", tmp_path, "train")
    layouts.gta5(tmp_path, {"1": layouts.ids_grid([7])})
    with pytest.raises(DatasetError, match="ACDC option"):
        build_dataset("gta5", tmp_path, "all", conditions=["fog"])
    assert issubclass(DatasetError, VLTSegError)


def test_cityscapes_lut_agrees_with_the_bag_tools_conversion():
    ids = np.arange(34, dtype=np.uint8).reshape(2, 17)
    np.testing.assert_array_equal(apply_lut(ids, cityscapes_lut()), cityscapes_to_train_ids(ids))
    lut = cityscapes_lut()
    assert lut.shape == (256,) and lut.dtype == np.uint8
    assert (lut[7], lut[26], lut[0], lut[33], lut[200]) == (0, 13, 255, 18, 255)
    assert sorted(set(lut.tolist()) - {255}) == list(range(19))


def test_cityscapes_label_ids_that_are_no_label_ids_are_an_error_naming_file_and_values(
    tmp_path,
):
    # 40 is no Cityscapes labelId (0-33), nor is 255: a train-id map given as labelIds, say
    ids = layouts.ids_grid([7, 40, 26, 255, 40])
    layouts.cityscapes(tmp_path, "val", {"aachen_000000_000019": {"labelIds": ids}})
    dataset = build_dataset("cityscapes", tmp_path, "val")
    label = dataset.samples[0].label
    message = r"aachen_000000_000019_gtFine_labelIds\.png holds values \[40, 255\] that are not "
    with pytest.raises(DatasetError, match=message + "Cityscapes labelIds"):
        dataset[0]
    with pytest.raises(DatasetError, match=r"label .*labelIds\.png holds values \[40, 255\]"):
        read_label_file(label, "cityscapes")
    with pytest.raises(DatasetError, match=r"x\.png holds values \[40\] that are not Cityscapes"):
        label_maps.cityscapes_to_train_ids(np.array([[7, 40]], np.uint8), "label x.png")
    known = np.array([[7, 26, 0, 33, 9]], np.uint8)
    np.testing.assert_array_equal(
        label_maps.cityscapes_to_train_ids(known), [[0, 13, 255, 18, 255]]
    )


def test_synthia_and_mapillary_tables():
    assert synthia_lut().shape == (65536,) and mapillary_lut().shape == (256,)
    # every train id is produced; SYNTHIA's terrain / truck / train are mapped though absent
    assert sorted(set(SYNTHIA_TO_TRAIN_ID.values())) == list(range(19))
    assert sorted(set(MAPILLARY_V12_TO_TRAIN_ID.values())) == list(range(19))
    raw = np.array([[3, 8, 22, 1000]], dtype=np.uint16)
    np.testing.assert_array_equal(apply_lut(raw, synthia_lut()), [[0, 13, 255, 255]])
    assert mapillary_lut()[55] == 13 and mapillary_lut()[65] == 255
    with pytest.raises(ValueError):
        synthia_lut()[0] = 1  # shared tables are read-only


def test_apply_lut_rejects_ids_it_cannot_index():
    with pytest.raises(DatasetError, match="outside the ids 0-255"):
        apply_lut(np.array([[300]], dtype=np.uint16), cityscapes_lut(), source="label x.png")
    with pytest.raises(DatasetError, match="float"):
        apply_lut(np.zeros((2, 2), np.float32), cityscapes_lut())
