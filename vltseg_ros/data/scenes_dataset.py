"""A data set of synthetic street scenes on disk, in the Cityscapes layout with train-id labels.

:func:`write_scenes` writes ``count`` scenes of
:func:`vltseg_ros.data.scenes.synthetic_street_scene`
so that the ``cityscapes`` reader (and so ``vltseg train`` / ``vltseg evaluate``) reads them::

    <root>/leftImg8bit/<split>/scenes/scenes_<seed>_000000_leftImg8bit.png        (RGB image)
    <root>/gtFine/<split>/scenes/scenes_<seed>_000000_gtFine_labelTrainIds.png    (train ids)

Scene ``i`` uses seed ``seed + i`` (zero-padded to 6 digits in the name), so two calls with
disjoint seed ranges give disjoint scenes: the demo model trains on seeds [0, N) and is
evaluated on seeds from 100000 on, which training never sees.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.errors import DatasetError

LOG = logging.getLogger(__name__)

CITY = "scenes"
"""The Cityscapes "city" folder the scenes are written to."""
HELD_OUT_SEED = 100000
"""First seed of held-out scenes: the demo model was trained on seeds below it."""


def scene_base_name(seed: int) -> str:
    """Cityscapes-style base name ``scenes_<seed>_000000`` of the scene with ``seed``."""
    return f"{CITY}_{seed:06d}_000000"


def write_scenes(
    root: str | Path,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (512, 1024),
    split: str = "train",
) -> Path:
    """Write ``count`` synthetic street scenes (seeds ``seed`` ... ``seed + count - 1``).

    Args:
        root: the data set root (created when missing).
        count: number of scenes, at least 1.
        seed: seed of the first scene, >= 0.
        size: (H, W) of every scene in pixels, each at least 32.
        split: the Cityscapes split folder (``train``, ``val``, ...).

    Returns:
        ``root`` as a Path; images are (H, W, 3) 8-bit RGB PNGs, labels (H, W) 8-bit grey PNGs
        of Cityscapes train ids (layout: module docstring).

    Raises:
        DatasetError: a bad count, seed, size or split, or a split folder that already holds
            images (scenes of several calls would mix unnoticed).
        OSError: a file cannot be written.
    """
    height, width = size
    if count < 1 or seed < 0:
        raise DatasetError(f"count must be >= 1 and seed >= 0, got count {count}, seed {seed}")
    if height < 32 or width < 32:
        raise DatasetError(f"scenes need at least 32x32 pixels, got {width}x{height} (WxH)")
    if not split or "/" in split or split in (".", ".."):
        raise DatasetError(f"split must be a plain folder name such as train, got {split!r}")
    root = Path(root).expanduser()
    images_dir = root / "leftImg8bit" / split / CITY
    labels_dir = root / "gtFine" / split / CITY
    if images_dir.is_dir() and any(images_dir.iterdir()):
        raise DatasetError(
            f"{images_dir} already holds files; remove it or choose another root or split"
        )
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, labels = synthetic_street_scene(height, width, seed=seed + i, void_objects=True)
        base = scene_base_name(seed + i)
        _write_png(images_dir / f"{base}_leftImg8bit.png", np.ascontiguousarray(image[..., ::-1]))
        _write_png(labels_dir / f"{base}_gtFine_labelTrainIds.png", labels)
    LOG.info("wrote %d scenes (seeds %d-%d) to %s", count, seed, seed + count - 1, root)
    return root


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write (H, W) grey or (H, W, 3) BGR uint8 as PNG; OpenCV reports failure by a False."""
    if not cv2.imwrite(str(path), array, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")
