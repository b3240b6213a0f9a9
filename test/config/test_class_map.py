"""Class maps: the shipped examples bind to Cityscapes, the lookup table, membership and output
class set mean what they say (gaps included), and every bad file is a one-line ConfigError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vltseg_ros.config.class_map import load_class_map, read_class_map
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CITYSCAPES = load_class_set("cityscapes")
ID = {name: i for i, name in enumerate(CITYSCAPES.names)}
# autoware.universe segmentation_pointcloud_fusion/node.hpp's list, in mask-value order
AUTOWARE = [
    "UNKNOWN",
    "BUILDING",
    "WALL",
    "OBSTACLE",
    "TRAFFIC_LIGHT",
    "TRAFFIC_SIGN",
    "PERSON",
    "VEHICLE",
    "BIKE",
    "ROAD",
    "SIDEWALK",
    "ROAD_PAINT",
    "CURBSTONE",
    "CROSSWALK",
    "VEGETATION",
    "SKY",
]


def _write(tmp_path: Path, text: str, name: str = "map.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_traversability_map() -> None:
    path = REPO / "config" / "class_maps" / "traversability.yaml"
    bound = load_class_map(path, CITYSCAPES)
    assert bound.classes.names == ("traversable", "obstacle", "sky")
    assert bound.describe() == f"traversability ({path})"
    expected = np.full(256, 255, np.uint8)
    expected[:19] = 1  # obstacle ...
    expected[[ID["road"], ID["sidewalk"], ID["terrain"]]] = 0
    expected[ID["sky"]] = 2
    np.testing.assert_array_equal(bound.lut, expected)
    assert bound.classes.palette == ((0, 180, 0), (220, 20, 60), CITYSCAPES.palette[ID["sky"]])
    assert bound.membership.sum(0).tolist() == [1.0] * 19  # every model class mapped once


def test_shipped_autoware_map_uses_autowares_names_and_ids() -> None:
    bound = load_class_map(REPO / "config" / "class_maps" / "autoware.yaml", CITYSCAPES)
    assert list(bound.classes.names) == AUTOWARE
    assert bound.labels() == tuple(enumerate(AUTOWARE))
    out = {name: int(bound.lut[ID[name]]) for name in CITYSCAPES.names}
    assert out["road"] == 9 and out["sidewalk"] == 10 and out["sky"] == 15
    assert out["car"] == out["bus"] == out["train"] == out["truck"] == 7
    assert out["person"] == out["rider"] == 6 and out["bicycle"] == out["motorcycle"] == 8
    assert out["vegetation"] == out["terrain"] == 14
    assert bound.membership[[0, 11, 12, 13]].sum() == 0  # never predicted from Cityscapes
    assert bound.classes.palette[1] == CITYSCAPES.palette[ID["building"]]


def test_gaps_defaults_and_colors(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: gaps\ndefault: rest\nclasses:\n"
        "  - {name: ground, id: 2, members: [sidewalk, road]}\n"
        "  - {name: rest, id: 7}\n"
        "  - {name: marking, id: 4}\n"
        "  - {name: people, id: 0, members: [person], color: [1, 2, 3]}\n",
    )
    bound = load_class_map(path, CITYSCAPES)
    assert bound.num_classes == 8
    assert bound.classes.names == (
        "people",
        "unused_1",
        "ground",
        "unused_3",
        "marking",
        "unused_5",
        "unused_6",
        "rest",
    )
    palette = bound.classes.palette
    assert palette[0] == (1, 2, 3)
    assert palette[2] == CITYSCAPES.palette[ID["sidewalk"]]  # its first member's
    assert palette[7] == CITYSCAPES.palette[ID["building"]]  # first model class it receives
    assert palette[4] == palette[1] == (0, 0, 0)  # no member, and placeholders: black
    assert bound.labels() == ((0, "people"), (2, "ground"), (4, "marking"), (7, "rest"))
    expected = [2, 2] + [7] * 9 + [0] + [7] * 7
    assert bound.lut[:19].tolist() == expected and set(bound.lut[19:].tolist()) == {255}
    membership = bound.membership
    assert membership.shape == (8, 19)
    np.testing.assert_array_equal(membership.argmax(0), expected)
    assert membership[[1, 3, 4, 5, 6]].sum() == 0
    # ground truth: 255 stays 255, every class through the table
    labels = np.array([[0, 1, 11, 255], [13, 18, 10, 255]], np.uint8)
    assert bound.map_labels(labels).tolist() == [[2, 2, 0, 255], [7, 7, 7, 255]]


def test_without_default_unlisted_classes_are_unlabeled(tmp_path: Path) -> None:
    path = _write(tmp_path, "classes: [{name: drivable, id: 0, members: [road]}]\n")
    config = read_class_map(path)
    assert config.name == "map" and config.default is None  # name: the file's stem
    bound = config.bind(CITYSCAPES)
    assert bound.lut[:19].tolist() == [0] + [255] * 18
    assert bound.index.tolist() == [0] + [-1] * 18
    labels = np.array([[0, 1, 255]], np.uint8)
    assert bound.map_labels(labels).tolist() == [[0, 255, 255]]
    with pytest.raises(ValueError, match=r"values \[19, 40\] .* neither class ids 0-18"):
        bound.map_labels(np.array([[0, 19, 40, 255]], np.uint8))


def test_json_map(tmp_path: Path) -> None:
    text = '{"name": "j", "classes": [{"name": "a", "id": 3, "members": ["car"]}]}'
    bound = load_class_map(_write(tmp_path, text, "m.json"), CITYSCAPES)
    assert bound.classes.names == ("unused_0", "unused_1", "unused_2", "a")


BAD = {
    "unknown class": (
        "classes: [{name: a, id: 0, members: [raod]}]",
        r"class 'a' lists 'raod', which is not a class of 'cityscapes'; did you mean 'road'\?",
    ),
    "class in two": (
        "classes: [{name: a, id: 0, members: [road]}, {name: b, id: 1, members: [car, road]}]",
        r"'road' is in both 'a' and 'b'; a model class may belong to one output class only",
    ),
    "duplicate id": (
        "classes: [{name: a, id: 3}, {name: b, id: 3}]",
        r"output class id\(s\) \[3\] used twice",
    ),
    "duplicate name": (
        "classes: [{name: a, id: 0}, {name: a, id: 1}]",
        r"output class name\(s\) \['a'\] used twice",
    ),
    "id 255": ("classes: [{name: a, id: 255}]", r"id 255 is outside 0-254"),
    "negative id": ("classes: [{name: a, id: -1}]", r"id -1 is outside 0-254"),
    "id not a number": ("classes: [{name: a, id: x}]", r"classes\[0\]\.id must be a number"),
    "bad color": ("classes: [{name: a, id: 0, color: [0, 0, 300]}]", r"not RGB 0-255"),
    "short color": ("classes: [{name: a, id: 0, color: [0, 0]}]", r"a list of 3 entries"),
    "member twice": ("classes: [{name: a, id: 0, members: [car, car]}]", r"lists \['car'\]"),
    "unknown default": ("default: b\nclasses: [{name: a, id: 0}]", r"default 'b' is none of"),
    "no classes": ("classes: []", r"give at least one output class"),
    "classes not a list": ("classes: {a: 0}", r"classes must be a list"),
    "unknown key": ("classes: [{name: a, id: 0, colour: [1, 2, 3]}]", r"unknown key\(s\)"),
    "placeholder name": (
        "classes: [{name: unused_0, id: 1}]",
        r"output class 'unused_0' is named like the placeholder of an unused id",
    ),
    "malformed yaml": ("classes: [{name: a, id: 0}\n", r"cannot parse .*map\.yaml"),
    "not a mapping": ("- a\n- b\n", r"must hold a mapping at the top level"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_maps_are_one_line_config_errors(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    path = _write(tmp_path, text + "\n")
    with pytest.raises(ConfigError, match=message) as error:
        load_class_map(path, CITYSCAPES)
    assert "\n" not in str(error.value)
    assert str(path) in str(error.value)  # names the file


@pytest.mark.parametrize(
    ("kind", "message"),
    [("missing", "does not exist"), ("empty", "is empty"), ("dir", "is a folder")],
)
def test_missing_empty_or_folder(tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "map.yaml"
    if kind == "empty":
        path.write_text("")
    elif kind == "dir":
        path.mkdir()
    with pytest.raises(ConfigError, match=f"class map file '{path}' {message}"):
        read_class_map(path)
