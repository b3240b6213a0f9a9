"""A data set of synthetic street scenes on disk, in the Cityscapes layout with train-id labels.

:func:`write_scenes` writes ``count`` scenes of
:func:`vltseg_ros.data.scenes.synthetic_street_scene`
so that the ``cityscapes`` reader (and so ``vltseg train`` / ``vltseg evaluate``) reads them::

    <root>/leftImg8bit/<split>/scenes/scenes_<seed>_000000_leftImg8bit.png        (RGB image)
    <root>/gtFine/<split>/scenes/scenes_<seed>_000000_gtFine_labelTrainIds.png    (train ids)

Scene ``i`` uses seed ``seed + i`` (zero-padded to 6 digits in the name), so two calls with
disjoint seed ranges give disjoint scenes: the demo model trains on seeds [0, N) and is
evaluated on seeds from 100000 on, which training never sees.

With ``unseen_objects`` (:data:`UNSEEN_OBJECT_SETS` other than ``none``) objects of no class
(:mod:`vltseg_ros.data.unseen_objects`, pasted with the scene's seed) are painted into every
scene, labelled ignore, and the scenes are also written as an anomaly set in the
``road_anomaly21`` layout (:mod:`vltseg_ros.data.anomaly_sets`), read as
``road_anomaly21:<root>``::

    <root>/images/scenes_<seed>_000000_validation.png                      (RGB image)
    <root>/labels_masks/scenes_<seed>_000000_validation_labels_semantic.png
        (0 in-distribution, 1 pasted object, 255 the scene's own void objects)
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.unseen_objects import (
    HARD_SCENARIOS,
    paste_hard_unseen_objects,
    paste_unseen_objects,
)
from vltseg_ros.data.void_objects import paste_varied_void_objects
from vltseg_ros.errors import DatasetError

LOG = logging.getLogger(__name__)

CITY = "scenes"
"""The Cityscapes "city" folder the scenes are written to."""
HELD_OUT_SEED = 100000
"""First seed of held-out scenes: the demo model was trained on seeds below it."""
UNSEEN_OBJECT_SETS = ("none", "animals", "hard", *HARD_SCENARIOS)
"""``unseen_objects`` of :func:`write_scenes`: none; ``animals`` (:func:`paste_unseen_objects`);
a scenario of :func:`paste_hard_unseen_objects`; ``hard``: its scenarios in turn (scenario
``seed % 5`` of :data:`HARD_SCENARIOS` for the scene with ``seed``)."""


VOID_OBJECT_STYLES = ("flat", "varied")
"""``void_objects`` of :func:`write_scenes` (``vltseg make-scenes --void-objects``)."""


def scene_base_name(seed: int) -> str:
    """Cityscapes-style base name ``scenes_<seed>_000000`` of the scene with ``seed``."""
    return f"{CITY}_{seed:06d}_000000"


def write_scenes(
    root: str | Path,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (512, 1024),
    split: str = "train",
    unseen_objects: str = "none",
    void_objects: str = "flat",
) -> Path:
    """Write ``count`` synthetic street scenes (seeds ``seed`` ... ``seed + count - 1``).

    Args:
        root: the data set root (created when missing).
        count: number of scenes, at least 1.
        seed: seed of the first scene, >= 0.
        size: (H, W) of every scene in pixels, each at least 32.
        split: the Cityscapes split folder (``train``, ``val``, ...).
        unseen_objects: one of :data:`UNSEEN_OBJECT_SETS`: paste these objects and write the
            scenes as a ``road_anomaly21`` anomaly set too (module docstring).
        void_objects: one of :data:`VOID_OBJECT_STYLES`: ``flat`` boxes and ellipses
            (``synthetic_street_scene(void_objects=True)``) or ``varied`` ones
            (:func:`~vltseg_ros.data.void_objects.paste_varied_void_objects`: the demo model's
            training scenes).

    Returns:
        ``root`` as a Path; images are (H, W, 3) 8-bit RGB PNGs, labels (H, W) 8-bit grey PNGs
        of Cityscapes train ids (layout: module docstring).

    Raises:
        DatasetError: a bad count, seed, size, split, unseen_objects or void_objects, or a
            split (or anomaly images) folder that already holds images (scenes of several
            calls would mix unnoticed).
        OSError: a file cannot be written.
    """
    height, width = size
    if count < 1 or seed < 0:
        raise DatasetError(f"count must be >= 1 and seed >= 0, got count {count}, seed {seed}")
    if height < 32 or width < 32:
        raise DatasetError(f"scenes need at least 32x32 pixels, got {width}x{height} (WxH)")
    if not split or "/" in split or split in (".", ".."):
        raise DatasetError(f"split must be a plain folder name such as train, got {split!r}")
    if unseen_objects not in UNSEEN_OBJECT_SETS:
        raise DatasetError(
            f"unknown unseen_objects {unseen_objects!r}; choose from "
            f"{', '.join(UNSEEN_OBJECT_SETS)}"
        )
    if void_objects not in VOID_OBJECT_STYLES:
        raise DatasetError(
            f"unknown void_objects {void_objects!r}; choose from {', '.join(VOID_OBJECT_STYLES)}"
        )
    root = Path(root).expanduser()
    images_dir = root / "leftImg8bit" / split / CITY
    labels_dir = root / "gtFine" / split / CITY
    folders = [images_dir] + ([root / "images"] if unseen_objects != "none" else [])
    for folder in folders:
        if folder.is_dir() and any(folder.iterdir()):
            raise DatasetError(
                f"{folder} already holds files; remove it or choose another root or split"
            )
        folder.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, labels = _scene(height, width, seed + i, void_objects)
        base = scene_base_name(seed + i)
        if unseen_objects != "none":
            image, labels = _paste_and_write_truth(
                root, base, image, labels, seed + i, unseen_objects
            )
        _write_png(images_dir / f"{base}_leftImg8bit.png", np.ascontiguousarray(image[..., ::-1]))
        _write_png(labels_dir / f"{base}_gtFine_labelTrainIds.png", labels)
    LOG.info("wrote %d scenes (seeds %d-%d) to %s", count, seed, seed + count - 1, root)
    return root


def _scene(height: int, width: int, seed: int, void_objects: str) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (H, W, 3) uint8 RGB and (H, W) uint8 train ids, with ``void_objects``."""
    if void_objects == "flat":
        return synthetic_street_scene(height, width, seed=seed, void_objects=True)
    return paste_varied_void_objects(*synthetic_street_scene(height, width, seed=seed), seed)


def _paste_and_write_truth(
    root: Path, base: str, image: np.ndarray, labels: np.ndarray, seed: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the ``kind`` of unseen objects into one (H, W, 3) uint8 RGB scene and its (H, W)
    uint8 train ids, write it as a ``road_anomaly21`` sample under ``root``; returns the
    pasted image and labels."""
    if kind == "animals":
        pasted, new_labels, mask = paste_unseen_objects(image, labels, seed=seed)
    else:
        scenario = HARD_SCENARIOS[seed % len(HARD_SCENARIOS)] if kind == "hard" else kind
        pasted, new_labels, mask = paste_hard_unseen_objects(image, labels, seed, scenario)
    truth = np.where(labels == 255, np.uint8(255), np.uint8(0))
    truth[mask] = 1
    name = f"{base}_validation"
    _write_png(root / "images" / f"{name}.png", np.ascontiguousarray(pasted[..., ::-1]))
    (root / "labels_masks").mkdir(exist_ok=True)
    _write_png(root / "labels_masks" / f"{name}_labels_semantic.png", truth)
    return pasted, new_labels


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write (H, W) grey or (H, W, 3) BGR uint8 as PNG; OpenCV reports failure by a False."""
    if not cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")
