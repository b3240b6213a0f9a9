"""Frames folders: Cityscapes / ACDC / plain image-label pairing, labelIds, size checks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from test.conftest import shared_frame
from vltseg_ros.bag.frames import (
    check_sizes,
    cityscapes_to_train_ids,
    find_frames,
    label_files,
    load_frame,
)
from vltseg_ros.data.dataset import read_label_file
from vltseg_ros.errors import BagError, DatasetError


def _image(path: Path, height: int = 8, width: int = 12, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = value  # red channel: identifies the file and checks the color order
    cv2.imwrite(str(path), rgb[..., ::-1])
    return path


def _label(path: Path, values: np.ndarray | int, shape: tuple[int, int] = (8, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.broadcast_to(np.asarray(values, np.uint8), shape)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


def test_cityscapes_layout_with_a_separate_labels_folder(tmp_path: Path) -> None:
    city = "val/frankfurt"
    for index, base in enumerate(["frankfurt_000000_000002", "frankfurt_000000_000001"]):
        _image(tmp_path / "leftImg8bit" / city / f"{base}_leftImg8bit.png", value=index)
        gt = tmp_path / "gtFine" / city
        _label(gt / f"{base}_gtFine_labelTrainIds.png", index)
        _label(gt / f"{base}_gtFine_labelIds.png", 7)
        _image(gt / f"{base}_gtFine_color.png")
        _label(gt / f"{base}_gtFine_instanceIds.png", 0)
    pairs = find_frames(tmp_path / "leftImg8bit", tmp_path / "gtFine")
    assert [p.image.name for p in pairs] == [
        "frankfurt_000000_000001_leftImg8bit.png",  # sorted by relative path
        "frankfurt_000000_000002_leftImg8bit.png",
    ]
    assert all(p.label.name.endswith("_gtFine_labelTrainIds.png") for p in pairs)
    assert all(p.label_ids == "train" for p in pairs)
    image, label = load_frame(pairs[0])
    assert image.shape == (8, 12, 3) and image[0, 0, 0] == 1  # RGB order
    assert label.shape == (8, 12) and (label == 1).all()
    # the dataset root as IMAGES_DIR: annotation files are never taken as images
    assert find_frames(tmp_path) == pairs


def test_cityscapes_label_ids_are_converted_with_the_official_table(tmp_path: Path) -> None:
    from cityscapesscripts.helpers.labels import labels

    ids = np.array([[0, 4, 7, 8, 11, 26, 33, 3, 24, 21, 23, 14]], np.uint8)
    _image(tmp_path / "a_leftImg8bit.png", 1, 12)
    _label(tmp_path / "a_gtFine_labelIds.png", ids, (1, 12))
    (pair,) = find_frames(tmp_path)
    assert pair.label_ids == "cityscapes"
    _, train = load_frame(pair)
    by_id = {label.id: label.trainId for label in labels if label.id >= 0}
    expected = [by_id[i] if by_id[i] not in (-1, 255) else 255 for i in ids[0]]
    assert train[0].tolist() == expected == [255, 255, 0, 1, 2, 13, 18, 255, 11, 8, 10, 255]
    with pytest.raises(BagError, match=r"values \[34, 200\] that are not Cityscapes labelIds"):
        cityscapes_to_train_ids(np.array([[34, 200, 7]], np.uint8))


def test_label_ids_convert_as_the_data_readers_do(tmp_path: Path) -> None:
    # 7 road, 26 car, 0 unlabeled, 33 bicycle, 9 parking (ignored)
    ids = np.array([[7, 26, 0, 33, 9, 7]], np.uint8)
    _image(tmp_path / "a_leftImg8bit.png", 1, 6)
    label = _label(tmp_path / "a_gtFine_labelIds.png", ids, (1, 6))
    (pair,) = find_frames(tmp_path)
    bag_train_ids = load_frame(pair)[1]
    data_train_ids = read_label_file(label, "cityscapes")
    assert bag_train_ids.dtype == data_train_ids.dtype == np.uint8
    assert bag_train_ids.tolist() == data_train_ids.tolist() == [[0, 13, 255, 18, 255, 0]]


def test_an_id_that_is_no_label_id_is_an_error_as_in_the_data_readers(tmp_path: Path) -> None:
    _image(tmp_path / "a_leftImg8bit.png", 1, 4)
    label = _label(tmp_path / "a_gtFine_labelIds.png", np.array([[7, 40, 26, 40]]), (1, 4))
    (pair,) = find_frames(tmp_path)
    message = (
        r"label .*a_gtFine_labelIds\.png holds values \[40\] that are not Cityscapes labelIds"
    )
    with pytest.raises(BagError, match=message) as bag_error:
        load_frame(pair)
    with pytest.raises(DatasetError, match=message) as data_error:
        read_label_file(label, "cityscapes")
    assert str(bag_error.value) == str(data_error.value)
    assert not isinstance(bag_error.value, DatasetError)  # each layer raises its own error


def test_acdc_layout(tmp_path: Path) -> None:
    base = "GOPR0475_frame_000049"
    _image(tmp_path / "rgb_anon" / "fog" / "train" / f"{base}_rgb_anon.png")
    gt = tmp_path / "gt" / "fog" / "train"
    _label(gt / f"{base}_gt_labelIds.png", 26)
    _image(gt / f"{base}_gt_labelColor.png")
    _label(gt / f"{base}_gt_invIds.png", 0)
    (pair,) = find_frames(tmp_path)
    assert pair.label.name == f"{base}_gt_labelIds.png" and pair.label_ids == "cityscapes"
    assert (load_frame(pair)[1] == 13).all()  # car
    _label(gt / f"{base}_gt_labelTrainIds.png", 5)
    (pair,) = find_frames(tmp_path / "rgb_anon", tmp_path / "gt")
    assert pair.label.name == f"{base}_gt_labelTrainIds.png" and pair.label_ids == "train"


def test_plain_names(tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    _image(images / "a.png", value=10)
    _label(labels / "a.png", 3)
    _image(images / "seq" / "b.jpg", value=20)
    _label(labels / "seq" / "b_labels.png", 4)
    _image(images / "c.png", value=30)  # no label
    pairs = find_frames(images, labels)
    assert [(p.image.name, p.label and p.label.name) for p in pairs] == [
        ("a.png", "a.png"),
        ("c.png", None),
        ("b.jpg", "b_labels.png"),
    ]
    assert [int(load_frame(p)[1][0, 0]) for p in pairs if p.label] == [3, 4]
    # without a labels folder, labels are looked for beside the images (an image is never
    # its own label)
    _label(images / "c_labels.png", 5)
    assert [p.label and p.label.name for p in find_frames(images)] == [None, "c_labels.png", None]


def test_label_size_mismatch_names_both_files(tmp_path: Path) -> None:
    _image(tmp_path / "x.png", 8, 12)
    _label(tmp_path / "x_labels.png", 1, (8, 10))
    pairs = find_frames(tmp_path)
    message = r"label .*x_labels\.png is 10x8 \(WxH\) but its image .*x\.png is 12x8"
    with pytest.raises(BagError, match=message):
        check_sizes(pairs)
    with pytest.raises(BagError, match=message):
        load_frame(pairs[0])


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        find_frames(tmp_path / "missing")
    with pytest.raises(BagError, match="no image files"):
        find_frames(tmp_path)
    _image(tmp_path / "i" / "x.png")
    _label(tmp_path / "l" / "one" / "x.png", 1)
    _label(tmp_path / "l" / "two" / "x.png", 2)
    with pytest.raises(BagError, match=r"label name x\.png is ambiguous"):
        find_frames(tmp_path / "i", tmp_path / "l")
    _image(tmp_path / "rgb" / "y.png")
    _image(tmp_path / "rgb" / "y_labels.png")  # a color "label"
    (pair,) = find_frames(tmp_path / "rgb")
    with pytest.raises(BagError, match="is a RGB image; labels must be single-channel"):
        load_frame(pair)


def test_label_files_in_order_prefer_train_ids(tmp_path: Path) -> None:
    _label(tmp_path / "b" / "s_000002_gtFine_labelIds.png", 7)
    _label(tmp_path / "b" / "s_000002_gtFine_labelTrainIds.png", 0)
    _image(tmp_path / "b" / "s_000002_gtFine_color.png")
    _label(tmp_path / "a" / "s_000001_gtFine_labelIds.png", 7)
    _label(tmp_path / "c" / "plain.png", 1)
    pairs = label_files(tmp_path)
    assert [(p.label.name, p.label_ids) for p in pairs] == [
        ("s_000001_gtFine_labelIds.png", "cityscapes"),
        ("s_000002_gtFine_labelTrainIds.png", "train"),
        ("plain.png", "train"),
    ]


def test_shared_frames_folder() -> None:
    label = shared_frame("cityscapes_frankfurt_000001_055709_gtFine_labelTrainIds.png")
    pairs = {p.image.name: p for p in find_frames(label.parent)}
    frame = pairs["cityscapes_frankfurt_000001_055709_leftImg8bit.png"]
    assert frame.label == label and frame.label_ids == "train"
    assert label.name not in pairs
    acdc = [p for name, p in pairs.items() if name.startswith("acdc_")]
    assert acdc and all(p.label is None for p in acdc)
    check_sizes(list(pairs.values()))


def test_labels_folder_equal_to_images_folder_means_labels_beside_images(tmp_path) -> None:
    import cv2
    import numpy as np

    from vltseg_ros.bag.frames import find_frames

    image = np.zeros((4, 6, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a_leftImg8bit.png"), image)
    cv2.imwrite(str(tmp_path / "a_gtFine_labelTrainIds.png"), image[..., 0])
    cv2.imwrite(str(tmp_path / "b.png"), image)
    for labels in (None, tmp_path):
        pairs = find_frames(tmp_path, labels)
        assert [p.image.name for p in pairs] == ["a_leftImg8bit.png", "b.png"]
        assert pairs[0].label.name == "a_gtFine_labelTrainIds.png" and pairs[1].label is None
