"""Mapillary Vistas v1.2 as downloaded, its 66 classes mapped to the 19 Cityscapes classes.

``mapillary-vistas-dataset_public_v1.2.zip`` unpacked in the root (the v2.0 archive's
``<split>/v1.2/labels`` folder is read too)::

    <root>/<split>/images/<key>.jpg
    <root>/<split>/labels/<key>_labelTrainIds.png   (preferred: train ids, e.g. from the
                                                     reference's dataset_converters/mapillary.py)
    <root>/<split>/labels/<key>.png                 (else: v1.2 class ids as palette indices,
                                                     mapped with MAPILLARY_V12_TO_TRAIN_ID)

``split`` is ``training`` / ``validation`` (or ``train`` / ``val``); the reference evaluates
on ``validation``. Domain: ``mapillary``.
"""

from __future__ import annotations

from pathlib import Path

from vltseg_ros.data.dataset import LabelFormat, Sample, list_images, pair_samples, require_folder
from vltseg_ros.errors import DatasetError

MAPILLARY_LAYOUT = (
    "<root>/<split>/images/*.jpg with <root>/<split>/labels/*.png (v1.2 ids) or "
    "*_labelTrainIds.png; split training or validation"
)
_SPLIT_FOLDERS = {"train": "training", "val": "validation", "test": "testing"}


def mapillary_samples(root: Path, split: str) -> list[Sample]:
    """Mapillary Vistas v1.2 pairs of ``split``, sorted by path (layout: module docstring).

    Raises:
        DatasetError: a missing folder, or an image without a label file.
    """
    split_dir = Path(root) / _SPLIT_FOLDERS.get(split, split)
    images_dir = require_folder(split_dir / "images", MAPILLARY_LAYOUT)
    labels_dir = next(
        (d for d in (split_dir / "labels", split_dir / "v1.2" / "labels") if d.is_dir()), None
    )
    if labels_dir is None:
        raise DatasetError(
            f"no label folder {split_dir / 'labels'} (nor {split_dir / 'v1.2' / 'labels'}); "
            f"expected layout: {MAPILLARY_LAYOUT}"
        )

    def candidates(image: Path) -> list[tuple[Path, LabelFormat]]:
        folder = labels_dir / image.parent.relative_to(images_dir)
        return [
            (folder / f"{image.stem}_labelTrainIds.png", "train"),
            (folder / f"{image.stem}.png", "mapillary"),
        ]

    return pair_samples(list_images(images_dir), candidates, "mapillary")
