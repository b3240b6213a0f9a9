"""The synthetic source domains GTA5 and SYNTHIA-RAND-CITYSCAPES as downloaded.

GTA5 ("Playing for Data": ``01_images.zip`` ... ``10_labels.zip`` unpacked in one root)::

    <root>/images/<id>.png
    <root>/labels/<id>_labelTrainIds.png   (preferred: train ids, e.g. from the reference's
                                            tools/dataset_converters/gta.py)
    <root>/labels/<id>.png                 (else: Cityscapes labelIds as palette indices, mapped
                                            with cityscapesscripts' table; other values are
                                            ignored, as by the reference's gta.py)

SYNTHIA-RAND-CITYSCAPES (``SYNTHIA_RAND_CITYSCAPES.rar`` unpacked; the root holds ``RGB``)::

    <root>/RGB/<id>.png
    <root>/GT/LABELS/<id>_labelTrainIds.png   (preferred: train ids)
    <root>/GT/LABELS/<id>.png                 (else: 16-bit PNG, class id in the first channel,
                                               mapped with label_maps.SYNTHIA_TO_TRAIN_ID)

Neither data set has split folders; the reference trains on every image. ``split`` ``all`` (or
``train`` when there is no ``train.txt``) takes every image; any ``split`` with a file
``<root>/<split>.txt`` (one image name or stem per line, ``#`` comments) takes those images.
Domains: ``gta5``, ``synthia``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vltseg_ros.data.dataset import (
    LabelFormat,
    Sample,
    list_images,
    pair_samples,
    require_folder,
)
from vltseg_ros.errors import DatasetError

_log = logging.getLogger(__name__)

GTA5_LAYOUT = "<root>/images/*.png with <root>/labels/*.png (or *_labelTrainIds.png)"
SYNTHIA_LAYOUT = "<root>/RGB/*.png with <root>/GT/LABELS/*.png (or *_labelTrainIds.png)"


def gta5_samples(root: Path, split: str = "all") -> list[Sample]:
    """GTA5 image / label pairs, sorted by path (layout and splits: module docstring).

    Raises:
        DatasetError: a missing folder or split file, or an image without a label file.
    """
    root = Path(root)
    images_dir = require_folder(root / "images", GTA5_LAYOUT)
    labels_dir = require_folder(root / "labels", GTA5_LAYOUT)
    images = select_split(list_images(images_dir, (".png",)), root, split, "GTA5")
    return pair_samples(images, _candidates(images_dir, labels_dir, "gta5"), "gta5")


def synthia_samples(root: Path, split: str = "all") -> list[Sample]:
    """SYNTHIA-RAND-CITYSCAPES pairs, sorted by path (layout and splits: module docstring).

    Raises:
        DatasetError: a missing folder or split file, or an image without a label file.
    """
    root = Path(root)
    images_dir = require_folder(root / "RGB", SYNTHIA_LAYOUT)
    labels_dir = require_folder(root / "GT" / "LABELS", SYNTHIA_LAYOUT)
    images = select_split(list_images(images_dir, (".png",)), root, split, "SYNTHIA")
    return pair_samples(images, _candidates(images_dir, labels_dir, "synthia"), "synthia")


def select_split(images: list[Path], root: Path, split: str, dataset: str) -> list[Path]:
    """The images of ``split``: those named in ``<root>/<split>.txt``, else all for ``all`` or
    ``train``.

    Raises:
        DatasetError: no split file for another split, or a name in it without an image.
    """
    split_file = root / f"{split}.txt"
    if not split_file.is_file():
        if split not in ("all", "train"):
            raise DatasetError(
                f"{dataset} has no {split!r} split: no split file {split_file} (one image name "
                "per line); use split 'all' for every image"
            )
        if split == "train":
            _log.info("%s: no %s, training on every image (as the reference)", dataset, split_file)
        return images
    try:
        lines = split_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read split file {split_file}: {exc}") from exc
    wanted = [Path(s).stem for line in lines if (s := line.strip()) and not s.startswith("#")]
    by_stem = {image.stem: image for image in images}
    unknown = [stem for stem in wanted if stem not in by_stem]
    if unknown:
        raise DatasetError(
            f"split file {split_file} names {len(unknown)} image(s) that are not in the "
            f"{dataset} images folder, e.g. {unknown[0]!r}"
        )
    return sorted(by_stem[stem] for stem in dict.fromkeys(wanted))


def _candidates(images_dir: Path, labels_dir: Path, raw_format: LabelFormat):
    def candidates(image: Path) -> list[tuple[Path, LabelFormat]]:
        folder = labels_dir / image.parent.relative_to(images_dir)
        return [
            (folder / f"{image.stem}_labelTrainIds.png", "train"),
            (folder / f"{image.stem}.png", raw_format),
        ]

    return candidates
