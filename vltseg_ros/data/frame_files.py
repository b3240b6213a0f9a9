"""Image files and their label maps in a folder (searched recursively), by naming convention.

Used by the Cityscapes and ACDC readers (:mod:`~vltseg_ros.data.cityscapes`) and, raising
:class:`~vltseg_ros.errors.BagError` instead of :class:`~vltseg_ros.errors.DatasetError`, by
the bag tools (``vltseg make-bag``, ``vltseg bag-eval``) through ``vltseg_ros.bag.frames``.

Pairing rules (an image's label is looked up in the labels folder, or in the images folder
itself when none is given; a file name found in several subfolders is taken from the subfolder
with the image's relative path):

- Cityscapes ``<base>_leftImg8bit.<ext>``: ``<base>_gtFine_labelTrainIds.png``, else
  ``<base>_gtFine_labelIds.png`` (then the same with ``gtCoarse``);
- ACDC ``<base>_rgb_anon.<ext>``: ``<base>_gt_labelTrainIds.png``, else
  ``<base>_gt_labelIds.png``;
- any other ``<stem>.<ext>``: ``<stem>.png`` in the labels folder (only when one is given),
  else ``<stem>_labels.png``.

``*_labelIds.png`` hold Cityscapes label ids and are converted to train ids with
:func:`~vltseg_ros.data.label_maps.cityscapes_to_train_ids` (an id that is no Cityscapes
labelId is an error); all other label files must hold train ids (255 = ignore).
Annotation files (``*_gtFine_*``, ``*_gt_labelIds`` ..., ``*_labels.png``) are never taken
as images. Frames are sorted by their path relative to the images folder.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vltseg_ros.data.label_maps import cityscapes_to_train_ids
from vltseg_ros.errors import DatasetError, InvalidImageError
from vltseg_ros.io.image_files import open_image_file, read_image_file

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"})
LabelIds = Literal["train", "cityscapes"]
_ANNOTATION = re.compile(
    r"(_(gtFine|gtCoarse)_(labelIds|labelTrainIds|color|instanceIds|instanceTrainIds)"
    r"|_gt_(labelIds|labelTrainIds|labelColor|invIds)|_labels)$"
)
_LABEL_CANDIDATES: tuple[tuple[re.Pattern[str], tuple[tuple[str, LabelIds], ...]], ...] = (
    (
        re.compile(r"^(?P<base>.+)_leftImg8bit$"),
        (
            ("{base}_gtFine_labelTrainIds.png", "train"),
            ("{base}_gtFine_labelIds.png", "cityscapes"),
            ("{base}_gtCoarse_labelTrainIds.png", "train"),
            ("{base}_gtCoarse_labelIds.png", "cityscapes"),
        ),
    ),
    (
        re.compile(r"^(?P<base>.+)_rgb_anon$"),
        (("{base}_gt_labelTrainIds.png", "train"), ("{base}_gt_labelIds.png", "cityscapes")),
    ),
)


@dataclass(frozen=True)
class FramePair:
    """An image file and its label file (or None).

    Attributes:
        image: the image file.
        label: the label file, or None when the image has none.
        label_ids: "train" (train ids, written as they are) or "cityscapes" (Cityscapes
            labelIds, converted to train ids when read).
    """

    image: Path
    label: Path | None = None
    label_ids: LabelIds = "train"


def find_frames(images_dir: Path, labels_dir: Path | None = None) -> list[FramePair]:
    """Image files under ``images_dir`` with their labels, sorted by relative path.

    Raises:
        DatasetError: a folder does not exist, holds no image, or a label name is ambiguous.
    """
    images_dir = _folder(images_dir, "images")
    label_root = _folder(labels_dir, "labels") if labels_dir is not None else images_dir
    # --labels naming the images' own folder means "labels beside the images".
    separate = label_root.resolve() != images_dir.resolve()
    index: dict[str, list[Path]] = defaultdict(list)
    for path in _image_files(label_root):
        index[path.name].append(path)
    pairs = []
    for image in _image_files(images_dir):
        if _ANNOTATION.search(image.stem) or (separate and label_root in image.parents):
            continue
        relative = image.parent.relative_to(images_dir)
        for name, kind in _label_names(image, separate_labels=separate):
            label = _pick(index.get(name, []), label_root / relative, name)
            if label is not None:
                pairs.append(FramePair(image, label, kind))
                break
        else:
            pairs.append(FramePair(image))
    if not pairs:
        raise DatasetError(
            f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {images_dir}"
        )
    return sorted(pairs, key=lambda pair: pair.image.relative_to(images_dir).as_posix())


def label_files(labels_dir: Path) -> list[FramePair]:
    """The label files of a folder in relative-path order (as :class:`FramePair` with the
    label set and ``image`` equal to it): train-id files, and Cityscapes / ACDC ``labelIds``
    files where no ``labelTrainIds`` twin exists; color / instance files are skipped."""
    labels_dir = _folder(labels_dir, "labels")
    files = _image_files(labels_dir)
    names = {path.name for path in files}
    out = []
    for path in files:
        stem = path.stem
        if stem.endswith("_labelIds"):
            if f"{stem[: -len('_labelIds')]}_labelTrainIds.png" not in names:
                out.append(FramePair(path, path, "cityscapes"))
        elif not _ANNOTATION.search(stem) or stem.endswith(("_labelTrainIds", "_labels")):
            out.append(FramePair(path, path, "train"))
    if not out:
        raise DatasetError(f"no label files found under {labels_dir}")
    return sorted(out, key=lambda pair: pair.image.relative_to(labels_dir).as_posix())


def anomaly_label_files(folder: Path) -> list[Path]:
    """The PNG files under ``folder`` (searched recursively) in relative-path order: anomaly
    truth maps (single-channel 8-bit: 0 in-distribution, 1 anomaly, 255 void), matched to
    frames by that order as :func:`label_files` are.

    Raises:
        DatasetError: the folder does not exist or holds no PNG file.
    """
    folder = _folder(folder, "anomaly labels")
    files = [p for p in _image_files(folder) if p.suffix.lower() == ".png"]
    if not files:
        raise DatasetError(f"no PNG anomaly label files found under {folder}")
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def check_sizes(pairs: list[FramePair]) -> None:
    """Check (from the file headers only) that every label has its image's size.

    Raises:
        DatasetError: an unreadable file, or a label whose size differs from its image.
    """
    for pair in pairs:
        if pair.label is not None:
            image_size, label_size = _size(pair.image), _size(pair.label)
            if image_size != label_size:
                raise DatasetError(_mismatch(pair, image_size, label_size))


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (grey and palette images converted to color).

    Raises:
        DatasetError: the file is missing, empty, not an image, over the pixel limit (checked
            before decoding), truncated or corrupt.
    """
    try:
        bgr = read_image_file(path)
    except InvalidImageError as exc:
        raise DatasetError(str(exc)) from exc
    return np.ascontiguousarray(bgr[..., ::-1])


def read_label(path: Path, label_ids: LabelIds = "train") -> np.ndarray:
    """A label file as (H, W) uint8 train ids (255 = ignore).

    Single-channel 8-bit (grey or palette indices) files only, returned as stored for
    ``label_ids="train"``; ``label_ids="cityscapes"`` converts Cityscapes labelIds with
    :func:`~vltseg_ros.data.label_maps.cityscapes_to_train_ids`.

    Raises:
        DatasetError: the file is missing, unreadable or not single-channel 8-bit, or (for
            ``"cityscapes"``) holds values that are no Cityscapes labelIds.
    """
    try:
        with open_image_file(path) as image:
            if image.mode not in ("L", "P"):
                raise DatasetError(
                    f"label {path} is a {image.mode} image; labels must be single-channel 8-bit "
                    "(grey or palette) PNGs holding class ids"
                )
            label = np.array(image, dtype=np.uint8)
    except InvalidImageError as exc:
        raise DatasetError(f"label: {exc}") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read label {path}: {exc}") from exc
    return cityscapes_to_train_ids(label, f"label {path}") if label_ids == "cityscapes" else label


def load_frame(pair: FramePair) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 train-id label (or None) of a pair.

    Raises:
        DatasetError: unreadable files, or a label whose size differs from the image.
    """
    image = read_image(pair.image)
    if pair.label is None:
        return image, None
    label = read_label(pair.label, pair.label_ids)
    if label.shape != image.shape[:2]:
        raise DatasetError(_mismatch(pair, image.shape[1::-1], label.shape[::-1]))
    return image, label


def unique_stems(paths: list[Path]) -> list[str]:
    """The files' stems, suffixed ``_2``, ``_3`` ... where earlier files share a stem (the names
    ``vltseg segment`` writes its results under and ``vltseg make-bag`` gives its frames)."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems.append(path.stem if seen[path.stem] == 1 else f"{path.stem}_{seen[path.stem]}")
    return stems


def _label_names(image: Path, separate_labels: bool) -> list[tuple[str, LabelIds]]:
    stem = image.stem
    for pattern, names in _LABEL_CANDIDATES:
        match = pattern.match(stem)
        if match:
            return [(name.format(base=match["base"]), kind) for name, kind in names]
    plain: list[tuple[str, LabelIds]] = [(f"{stem}.png", "train")] if separate_labels else []
    return [*plain, (f"{stem}_labels.png", "train")]


def _pick(paths: list[Path], preferred_dir: Path, name: str) -> Path | None:
    if len(paths) <= 1:
        return paths[0] if paths else None
    same = [p for p in paths if p.parent == preferred_dir]
    if len(same) == 1:
        return same[0]
    raise DatasetError(
        f"label name {name} is ambiguous: found {', '.join(str(p) for p in paths)}; keep one "
        "per name or mirror the image folders' layout"
    )


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _folder(path: Path | None, role: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{role} folder {path} does not exist or is not a folder")
    return path


def _size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    try:
        with open_image_file(path) as image:
            return image.size
    except InvalidImageError as exc:
        raise DatasetError(str(exc)) from exc


def _mismatch(pair: FramePair, image_size: tuple, label_size: tuple) -> str:
    return (
        f"label {pair.label} is {label_size[0]}x{label_size[1]} (WxH) but its image "
        f"{pair.image} is {image_size[0]}x{image_size[1]}: a label must have its image's size"
    )
