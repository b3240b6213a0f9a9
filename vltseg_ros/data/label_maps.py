"""Label-id tables: each data set's class ids -> the 19 Cityscapes train ids (255 = ignore).

Every table is a numpy uint8 lookup table (LUT) indexed by the raw id; ids a table does not name
map to :data:`IGNORE_INDEX`. Apply one with :func:`apply_lut` (``lut[raw]``, vectorised).
Cityscapes / ACDC ``labelIds`` files go through :func:`cityscapes_to_train_ids` instead, the one
conversion of Cityscapes labelIds (the data set readers and the bag tools): a value that is no
Cityscapes labelId is an error there, not "ignore" (a train-id map or another data set's labels
given as labelIds would otherwise be scored silently as mostly ignored pixels).

Cityscapes train ids: 0 road, 1 sidewalk, 2 building, 3 wall, 4 fence, 5 pole, 6 traffic light,
7 traffic sign, 8 vegetation, 9 terrain, 10 sky, 11 person, 12 rider, 13 car, 14 truck, 15 bus,
16 train, 17 motorcycle, 18 bicycle.

Sources (the tables the VLTSeg reference's data preparation uses, so that accuracies compare):

- Cityscapes / ACDC / GTA5 ``labelIds``: cityscapesscripts' ``helpers.labels`` table (GTA5
  labels use Cityscapes label ids; the reference's ``tools/dataset_converters/gta.py``, from
  DAFormer, maps the same 19 ids and ignores every other value, so GTA5 labels are mapped with
  :func:`cityscapes_lut` alone, without the check of :func:`cityscapes_to_train_ids`).
- SYNTHIA-RAND-CITYSCAPES: :data:`SYNTHIA_TO_TRAIN_ID`, the README of SYNTHIA-RAND-CITYSCAPES as
  mapped by the reference's ``tools/dataset_converters/synthia.py`` (from DAFormer).
- Mapillary Vistas v1.2: :data:`MAPILLARY_V12_TO_TRAIN_ID`, the reference's
  ``tools/dataset_converters/mapillary.py`` (from HRDA); ids are v1.2's ``config.json`` order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np

from vltseg_ros.errors import DatasetError

IGNORE_INDEX = 255
"""Train id of pixels that are not evaluated and not trained on."""

SYNTHIA_TO_TRAIN_ID: Mapping[int, int] = {
    3: 0,  # road
    4: 1,  # sidewalk
    2: 2,  # building
    21: 3,  # wall
    5: 4,  # fence
    7: 5,  # pole
    15: 6,  # traffic light
    9: 7,  # traffic sign
    6: 8,  # vegetation
    16: 9,  # terrain (absent from SYNTHIA-RAND-CITYSCAPES' images)
    1: 10,  # sky
    10: 11,  # pedestrian -> person
    17: 12,  # rider
    8: 13,  # car
    18: 14,  # truck (absent from the images)
    19: 15,  # bus
    20: 16,  # train (absent from the images)
    12: 17,  # motorcycle
    11: 18,  # bicycle
}
"""SYNTHIA class id (first channel of ``GT/LABELS/*.png``) -> train id. Unmapped, so ignored:
0 void, 13 parking-slot, 14 road-work, 22 lanemarking. SYNTHIA has no terrain, truck or train
pixels, so those train ids never occur (models trained on it are evaluated on 16 or 19 classes).
"""

MAPILLARY_V12_TO_TRAIN_ID: Mapping[int, int] = {
    13: 0,  # construction--flat--road
    24: 0,  # marking--general (lane marking)
    41: 0,  # object--manhole
    2: 1,  # construction--barrier--curb
    15: 1,  # construction--flat--sidewalk
    17: 2,  # construction--structure--building
    6: 3,  # construction--barrier--wall
    3: 4,  # construction--barrier--fence
    45: 5,  # object--support--pole
    47: 5,  # object--support--utility-pole
    48: 6,  # object--traffic-light
    50: 7,  # object--traffic-sign--front
    30: 8,  # nature--vegetation
    29: 9,  # nature--terrain
    27: 10,  # nature--sky
    19: 11,  # human--person
    20: 12,  # human--rider--bicyclist
    21: 12,  # human--rider--motorcyclist
    22: 12,  # human--rider--other-rider
    55: 13,  # object--vehicle--car
    61: 14,  # object--vehicle--truck
    54: 15,  # object--vehicle--bus
    58: 16,  # object--vehicle--on-rails
    57: 17,  # object--vehicle--motorcycle
    52: 18,  # object--vehicle--bicycle
}
"""Mapillary Vistas v1.2 class id (0-65, the palette index of ``labels/*.png``) -> train id.
All other v1.2 classes are ignored, among them 7 bike-lane, 8 crosswalk-plain, 14 service-lane,
23 crosswalk-zebra (not road here), 49 traffic-sign--back, 56 caravan, 60 trailer, 63 car-mount,
64 ego-vehicle and 65 unlabeled. v2.0 labels (124 classes) use other ids and are not supported.
"""


@cache
def cityscapes_lut() -> np.ndarray:
    """(256,) uint8 LUT: Cityscapes labelId -> train id, from cityscapesscripts' label table.

    Classes the benchmark ignores (e.g. 0 unlabeled, 9 parking) and ids outside the table map
    to 255; :func:`cityscapes_to_train_ids` refuses the latter.

    Raises:
        DatasetError: cityscapesscripts is not installed.
    """
    return _cityscapes_tables()[0]


def cityscapes_to_train_ids(label_ids: np.ndarray, source: object = "label") -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds -> (H, W) uint8 train ids (ignored classes -> 255).

    The labelIds are those of cityscapesscripts' table that an image can hold, 0-33 (license
    plate, id -1, is never drawn into labelIds images); any other value (e.g. 40, or 255) is
    refused: the file is most likely a train-id map or another data set's labels.

    Args:
        label_ids: (H, W) unsigned integer array of labelIds.
        source: what the array is, for messages (e.g. ``"label <path>"``).

    Raises:
        DatasetError: cityscapesscripts is not installed, ``label_ids`` is not an integer
            array, or it holds values that are no Cityscapes labelIds (the message names
            ``source`` and up to 10 of them).
    """
    lut, known = _cityscapes_tables()
    train_ids = apply_lut(label_ids, lut, source)  # checks the dtype and the 0-255 range
    if not known[label_ids].all():
        unknown = np.unique(label_ids[~known[label_ids]])
        raise DatasetError(
            f"{source} holds values {unknown.tolist()[:10]} that are not Cityscapes labelIds "
            "(0-33): is it a train-id map (name it *_labelTrainIds.png) or another data "
            "set's labels?"
        )
    return train_ids


@cache
def _cityscapes_tables() -> tuple[np.ndarray, np.ndarray]:
    """(256,) uint8 labelId -> train id LUT and (256,) bool "is a labelId" mask."""
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError as exc:
        raise DatasetError(
            "converting Cityscapes labelIds needs cityscapesScripts (pip install "
            "cityscapesScripts), or use *_labelTrainIds.png label files"
        ) from exc
    ids = [entry.id for entry in labels if 0 <= entry.id < 256]
    table = {
        entry.id: entry.trainId
        for entry in labels
        if 0 <= entry.id < 256 and 0 <= entry.trainId < IGNORE_INDEX
    }
    known = np.zeros(256, dtype=bool)
    known[ids] = True
    known.flags.writeable = False
    return lut_from_mapping(table, 256), known


@cache
def synthia_lut() -> np.ndarray:
    """(65536,) uint8 LUT: SYNTHIA 16-bit class id -> train id (:data:`SYNTHIA_TO_TRAIN_ID`)."""
    return lut_from_mapping(SYNTHIA_TO_TRAIN_ID, 65536)


@cache
def mapillary_lut() -> np.ndarray:
    """(256,) uint8 LUT: Mapillary v1.2 id -> train id (:data:`MAPILLARY_V12_TO_TRAIN_ID`)."""
    return lut_from_mapping(MAPILLARY_V12_TO_TRAIN_ID, 256)


def lut_from_mapping(mapping: Mapping[int, int], size: int) -> np.ndarray:
    """A read-only (size,) uint8 LUT with ``lut[raw] = mapping[raw]`` and 255 elsewhere."""
    lut = np.full(size, IGNORE_INDEX, dtype=np.uint8)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    lut.flags.writeable = False
    return lut


def apply_lut(raw: np.ndarray, lut: np.ndarray, source: object = "label") -> np.ndarray:
    """Map raw ids through ``lut``: (H, W) uint8 or uint16 ids -> (H, W) uint8 train ids.

    Raises:
        DatasetError: ``raw`` is not an unsigned integer array whose values index ``lut``.
    """
    if raw.dtype.kind not in "ui":
        raise DatasetError(f"{source} holds {raw.dtype} values; label files hold integer ids")
    small = raw.dtype.kind == "u" and np.iinfo(raw.dtype).max < lut.size
    if not small and raw.size and (raw.min() < 0 or raw.max() >= lut.size):
        raise DatasetError(
            f"{source} holds values outside the ids 0-{lut.size - 1} of its data set "
            f"(min {raw.min()}, max {raw.max()}): wrong file or wrong data set?"
        )
    return lut[raw]
