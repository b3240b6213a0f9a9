"""Anomaly-segmentation validation sets as downloaded (the layouts RbA's code reads).

``fishyscapes_laf`` (Fishyscapes Lost & Found validation: labels from fishyscapes.com, images
from Lost & Found's ``leftImg8bit``)::

    <root>/fishyscapes_lostandfound/<nnnn>_<base>_labels.png     (label: 0, 1, 255)
    <root>/laf_images/<base>_leftImg8bit.png                      (its image)

The image name is the label name minus its first 5 characters (``0000_``) and its trailing
``labels.png``, plus ``leftImg8bit.png``.

``road_anomaly`` (Lis et al. 2019, ``RoadAnomaly_jpg``)::

    <root>/frame_list.json                                 (JSON list of image file names)
    <root>/frames/<name>                                   (image)
    <root>/frames/<name without extension>.labels/labels_semantic.png   (0 normal, 1, 2 anomaly)

``road_anomaly21`` (SegmentMeIfYouCan anomaly track, ``dataset_AnomalyTrack``) and
``road_obstacle21`` (obstacle track, ``dataset_ObstacleTrack``)::

    <root>/images/<stem>.jpg | .png | .webp                (RoadObstacle21: .webp)
    <root>/labels_masks/<stem>_labels_semantic.png         (0, 1, 255)

Only the validation images (file name containing ``validation``) have public labels; the
readers list those. In the obstacle track, void (255) covers everything off the road.

Truth values after reading (:func:`read_anomaly_truth`): 0 in-distribution, 1 anomaly, 255
void. Label files are 8-bit; of a color one the first (R) channel is read, as RbA does. Road
Anomaly's 2 becomes 1 (RbA does so); a value a set does not define becomes void, with a
warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vltseg_ros.data.dataset import LabelFormat, pair_samples, require_folder
from vltseg_ros.data.factory import split_spec
from vltseg_ros.errors import DatasetError, InvalidImageError
from vltseg_ros.io.image_files import read_image_file

_log = logging.getLogger(__name__)

VOID = 255
"""Truth value of pixels that are not evaluated."""

_LAYOUTS = {
    "fishyscapes_laf": "<root>/fishyscapes_lostandfound/<nnnn>_<base>_labels.png with "
    "<root>/laf_images/<base>_leftImg8bit.png",
    "road_anomaly": "<root>/frame_list.json, <root>/frames/<name> with "
    "<root>/frames/<name without extension>.labels/labels_semantic.png",
    "road_anomaly21": "<root>/images/<stem>.jpg|.png with "
    "<root>/labels_masks/<stem>_labels_semantic.png (validation images)",
    "road_obstacle21": "<root>/images/<stem>.webp with "
    "<root>/labels_masks/<stem>_labels_semantic.png (validation images)",
}
ANOMALY_DATASET_NAMES = tuple(_LAYOUTS)
"""The anomaly data set names :func:`anomaly_samples` accepts."""
_ALIASES = {
    "fishyscapes": "fishyscapes_laf",
    "fs_laf": "fishyscapes_laf",
    "roadanomaly": "road_anomaly",
    "roadanomaly21": "road_anomaly21",
    "roadobstacle21": "road_obstacle21",
    "road_anomaly_21": "road_anomaly21",
    "ra21": "road_anomaly21",
    "road_obstacle_21": "road_obstacle21",
    "road_obstacles": "road_obstacle21",
    "ro21": "road_obstacle21",
}
# label value -> truth value, per set; other values become VOID
_VALUES = {
    "fishyscapes_laf": {0: 0, 1: 1, VOID: VOID},
    "road_anomaly": {0: 0, 1: 1, 2: 1, VOID: VOID},
    "road_anomaly21": {0: 0, 1: 1, VOID: VOID},
    "road_obstacle21": {0: 0, 1: 1, VOID: VOID},
}
_SMIYC_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class AnomalySample:
    """One image with its anomaly label file.

    Attributes:
        image: the image file.
        label: its label file (same size; values per set, see the module docstring).
        name: the image file's stem.
        dataset: one of :data:`ANOMALY_DATASET_NAMES`.
    """

    image: Path
    label: Path
    name: str
    dataset: str


def anomaly_samples(name: str, root: str | Path) -> list[AnomalySample]:
    """The labelled samples of an anomaly set in its downloaded layout, sorted by file name
    (Road Anomaly: in ``frame_list.json``'s order).

    Args:
        name: one of :data:`ANOMALY_DATASET_NAMES` (or an alias such as ``fs_laf``, ``ra21``).
        root: the set's root folder (layouts: module docstring).

    Raises:
        DatasetError: an unknown name, a missing folder or file (the message shows the expected
            layout), an image without its label or a label without its image, or no samples.
    """
    key = canonical_anomaly_name(name)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{key} root {root} does not exist or is not a folder")
    if key == "fishyscapes_laf":
        samples = _fishyscapes_laf(root)
    elif key == "road_anomaly":
        samples = _road_anomaly(root)
    else:
        samples = _segment_me_if_you_can(root, key)
    _log.info("%s: %d labelled samples from %s", key, len(samples), root)
    return samples


def read_anomaly_truth(sample: AnomalySample) -> np.ndarray:
    """(H, W) uint8 truth of a sample: 0 in-distribution, 1 anomaly, 255 void (the set's label
    values mapped, see the module docstring).

    Raises:
        DatasetError: the label file is missing, unreadable, not 8-bit, or has 2 channels.
    """
    try:
        raw = read_image_file(sample.label, mode="unchanged")
    except InvalidImageError as exc:
        raise DatasetError(f"{sample.dataset} label: {exc}") from exc
    if raw.dtype != np.uint8 or raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] < 3):
        raise DatasetError(
            f"{sample.dataset} label {sample.label} is {raw.dtype} {raw.shape}; expected an "
            "8-bit grey or color PNG holding the label values"
        )
    if raw.ndim == 3:
        raw = raw[:, :, 2]  # OpenCV's BGR(A) order: index 2 is the first (R) channel
    table = np.full(256, VOID, dtype=np.uint8)
    for value, truth in _VALUES[sample.dataset].items():
        table[value] = truth
    present = np.bincount(raw.ravel(), minlength=256) > 0
    present[list(_VALUES[sample.dataset])] = False
    if present.any():
        _log.warning(
            "%s label %s holds values %s that the set does not define; counted as void",
            sample.dataset,
            sample.label,
            np.flatnonzero(present).tolist()[:10],
        )
    return table[raw]


def read_anomaly_image(sample: AnomalySample) -> np.ndarray:
    """(H, W, 3) uint8 **RGB** image of a sample (header checked before decoding).

    Raises:
        DatasetError: the image is missing, unreadable, too large, truncated or corrupt.
    """
    try:
        bgr = read_image_file(sample.image)
    except InvalidImageError as exc:
        raise DatasetError(f"{sample.dataset} {exc}") from exc
    return np.ascontiguousarray(bgr[..., ::-1])


def load_anomaly_sample(sample: AnomalySample) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 truth (0, 1, 255) of a sample.

    Raises:
        DatasetError: as :func:`read_anomaly_image` / :func:`read_anomaly_truth`, or the label's
            size differs from the image's.
    """
    image, truth = read_anomaly_image(sample), read_anomaly_truth(sample)
    if truth.shape != image.shape[:2]:
        raise DatasetError(
            f"label {sample.label} is {truth.shape[1]}x{truth.shape[0]} (WxH) but its image "
            f"{sample.image} is {image.shape[1]}x{image.shape[0]}: fix or remove the pair"
        )
    return image, truth


def parse_anomaly_spec(spec: str) -> tuple[str, Path]:
    """``"NAME:ROOT"`` (e.g. ``road_anomaly:/data/RoadAnomaly_jpg``) -> (canonical name, root).

    Raises:
        DatasetError: no ``:``, an empty root, or an unknown name.
    """
    example = "fishyscapes_laf:/data/Fishyscapes"
    name, root = split_spec(spec, "anomaly data set", example, ANOMALY_DATASET_NAMES)
    return canonical_anomaly_name(name), root


def canonical_anomaly_name(name: str) -> str:
    """An anomaly set name in its canonical spelling (``RA21`` -> ``road_anomaly21``).

    Raises:
        DatasetError: the name is not a known anomaly set.
    """
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _LAYOUTS:
        raise DatasetError(
            f"unknown anomaly data set {name!r}; choose from {', '.join(ANOMALY_DATASET_NAMES)}"
        )
    return key


def _fishyscapes_laf(root: Path) -> list[AnomalySample]:
    layout = _LAYOUTS["fishyscapes_laf"]
    labels_dir = require_folder(root / "fishyscapes_lostandfound", layout)
    images_dir = require_folder(root / "laf_images", layout)
    labels = sorted(
        p for p in labels_dir.iterdir() if p.name.endswith("labels.png") and len(p.name) > 15
    )
    samples, missing = [], []
    for label in labels:
        image = images_dir / f"{label.name[5:-10]}leftImg8bit.png"
        if image.is_file():
            samples.append(AnomalySample(image, label, image.stem, "fishyscapes_laf"))
        else:
            missing.append(f"{label} (looked for {image})")
    if missing:
        shown = "; ".join(missing[:3]) + ("; ..." if len(missing) > 3 else "")
        raise DatasetError(
            f"{len(missing)} Fishyscapes label(s) have no image: {shown}. Copy those Lost & "
            "Found leftImg8bit images into laf_images/ or remove the labels"
        )
    return _nonempty(samples, labels_dir, "*labels.png label files", layout)


def _road_anomaly(root: Path) -> list[AnomalySample]:
    layout = _LAYOUTS["road_anomaly"]
    frames_dir = require_folder(root / "frames", layout)
    names = _frame_list(root / "frame_list.json", layout)
    if not names:
        raise DatasetError(f"{root / 'frame_list.json'} lists no images")
    images = [frames_dir / name for name in names]
    absent = [str(image) for image in images if not image.is_file()]
    if absent:
        raise DatasetError(
            f"frame_list.json names {len(absent)} image(s) that do not exist, e.g. {absent[0]}; "
            f"expected layout: {layout}"
        )

    def label(image: Path) -> list[tuple[Path, LabelFormat]]:
        return [(image.with_suffix(".labels") / "labels_semantic.png", "train")]

    return _paired(images, label, "road_anomaly")


def _segment_me_if_you_can(root: Path, key: str) -> list[AnomalySample]:
    layout = _LAYOUTS[key]
    images_dir = require_folder(root / "images", layout)
    labels_dir = require_folder(root / "labels_masks", layout)
    images = sorted(
        p
        for p in images_dir.iterdir()
        if "validation" in p.name and p.suffix.lower() in _SMIYC_SUFFIXES and p.is_file()
    )

    def label(image: Path) -> list[tuple[Path, LabelFormat]]:
        return [(labels_dir / f"{image.stem}_labels_semantic.png", "train")]

    what = "validation images (file names containing 'validation'; the test images have no "
    what += "public labels)"
    return _nonempty(_paired(images, label, key), images_dir, what, layout)


def _paired(
    images: list[Path], label: Callable[[Path], list[tuple[Path, LabelFormat]]], dataset: str
) -> list[AnomalySample]:
    """Images with their label files (:func:`pair_samples`' check and message; the label
    format it carries is unused)."""
    return [
        AnomalySample(s.image, s.label, s.image.stem, dataset)
        for s in pair_samples(images, label, dataset)
    ]


def _frame_list(path: Path, layout: str) -> list[str]:
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"file {path} does not exist; expected layout: {layout}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path} as JSON: {exc}") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(f"{path} must hold a JSON list of image file names")
    return names


def _nonempty(
    samples: list[AnomalySample], folder: Path, what: str, layout: str
) -> list[AnomalySample]:
    if not samples:
        raise DatasetError(f"no {what} found in {folder}; expected layout: {layout}")
    return samples
