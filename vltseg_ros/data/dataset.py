"""The torch Dataset of (image, train-id label) file pairs that every data set reader returns.

A reader (:mod:`~vltseg_ros.data.cityscapes`, :mod:`~vltseg_ros.data.gta5_synthia`,
:mod:`~vltseg_ros.data.bdd100k`, :mod:`~vltseg_ros.data.mapillary`) lists :class:`Sample` s, each
an image file, its label file, how the label file encodes classes and the sample's domain.
:class:`SegmentationDataset` reads them on access:

- without a transform, ``dataset[i]`` is ``{"image": (H, W, 3) uint8 RGB, "labels": (H, W) uint8
  train ids (255 = ignore), "name": file stem, "domain": e.g. "acdc/night"}``;
- with a transform, ``transform(image, labels, key)`` returns the new ``image`` and ``labels``
  (e.g. :class:`~vltseg_ros.data.transforms.TrainTransform`: normalized tensors). ``key`` is
  the draw key: ``dataset[(i, key)]`` passes ``key`` (a sampler numbering the samples it draws
  makes augmentation reproducible across workers and resumes, see
  :class:`~vltseg_ros.data.sampler.InfiniteKeyedSampler`), plain ``dataset[i]`` passes ``i``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from vltseg_ros.data.frame_files import read_image, read_label
from vltseg_ros.data.label_maps import apply_lut, cityscapes_lut, mapillary_lut, synthia_lut
from vltseg_ros.errors import DatasetError, InvalidImageError
from vltseg_ros.io.image_files import read_image_file

_log = logging.getLogger(__name__)

LabelFormat = Literal["train", "cityscapes", "gta5", "mapillary", "synthia"]
"""How a label file encodes classes: ``train`` 8-bit train ids (255 = ignore); ``cityscapes``
8-bit Cityscapes labelIds (a value that is no labelId is an error); ``gta5`` 8-bit (palette)
Cityscapes labelIds where any other value is ignored, as the reference's GTA5 converter does;
``mapillary`` 8-bit (palette) Mapillary v1.2 ids; ``synthia`` 16-bit PNG with the SYNTHIA class
id in its first (R) channel."""

Transform = Callable[[np.ndarray, np.ndarray, int], tuple[Any, Any]]
"""``transform(image, labels, key) -> (image, labels)``: (H, W, 3) uint8 RGB and (H, W) uint8
train ids in, whatever the model takes out; ``key`` is an int draw key for its randomness."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_LUTS: dict[str, Callable[[], np.ndarray]] = {
    "gta5": cityscapes_lut,
    "mapillary": mapillary_lut,
    "synthia": synthia_lut,
}


@dataclass(frozen=True)
class Sample:
    """One image file with its label file.

    Attributes:
        image: the image file (any 8-bit color or grey image OpenCV reads).
        label: its label file, the image's size.
        label_format: how ``label`` encodes classes (:data:`LabelFormat`).
        domain: the data set and, where it has them, the condition (``"acdc/fog"``).
    """

    image: Path
    label: Path
    label_format: LabelFormat
    domain: str

    @property
    def name(self) -> str:
        """The image file's stem."""
        return self.image.stem


class SegmentationDataset(Dataset):
    """Image / label pairs read on access (see the module docstring for the items).

    Args:
        samples: the pairs, in the order ``dataset[i]`` returns them.
        transform: optional ``transform(image, labels, key)`` (:data:`Transform`).
        name: the data set's name, for messages.

    Raises:
        DatasetError: ``samples`` is empty.
    """

    def __init__(
        self, samples: Sequence[Sample], transform: Transform | None = None, name: str = "dataset"
    ) -> None:
        if not samples:
            raise DatasetError(f"{name}: no samples")
        self.samples = list(samples)
        self.transform = transform
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``item`` (an index, or an ``(index, draw key)`` pair); see the module doc."""
        index, key = item if isinstance(item, tuple) else (item, item)
        sample = self.samples[index]
        image, labels = load_sample(sample)
        if self.transform is not None:
            image, labels = self.transform(image, labels, int(key))
        return {"image": image, "labels": labels, "name": sample.name, "domain": sample.domain}

    @property
    def domains(self) -> list[str]:
        """The distinct domains of the samples, sorted (e.g. ``["acdc/fog", "acdc/night"]``)."""
        return sorted({sample.domain for sample in self.samples})


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 train ids (255 = ignore) of a sample.

    Raises:
        DatasetError: a file is missing or unreadable, or the label's size is not the image's.
    """
    image = read_image(sample.image)
    labels = read_label_file(sample.label, sample.label_format)
    if labels.shape != image.shape[:2]:
        raise DatasetError(
            f"label {sample.label} is {labels.shape[1]}x{labels.shape[0]} (WxH) but its image "
            f"{sample.image} is {image.shape[1]}x{image.shape[0]}: fix or remove the pair"
        )
    return image, labels


def read_label_file(path: Path, label_format: LabelFormat = "train") -> np.ndarray:
    """A label file as (H, W) uint8 train ids (255 = ignore); ``label_format`` says its ids.

    Raises:
        DatasetError: the file is missing, unreadable or not a single-channel 8-bit PNG
            (16-bit for ``synthia``), or holds ids its format does not have.
    """
    if label_format in ("train", "cityscapes"):
        return read_label(path, label_format)
    # 8-bit grey or palette indices as stored, or SYNTHIA's 16-bit class ids
    raw = _read_synthia(path) if label_format == "synthia" else read_label(path, "train")
    return apply_lut(raw, _LUTS[label_format](), source=f"label {path}")


def _read_synthia(path: Path) -> np.ndarray:
    try:
        raw = read_image_file(path, mode="unchanged")
    except InvalidImageError as exc:
        raise DatasetError(f"label: {exc}") from exc
    if raw.ndim == 3:
        if raw.shape[2] < 3:
            raise DatasetError(f"label {path} has {raw.shape[2]} channels; SYNTHIA labels have 3")
        raw = raw[:, :, 2]  # OpenCV's BGR order: index 2 is the first (R) channel
    return raw


def list_images(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files under ``folder`` (searched recursively), sorted by path.

    Raises:
        DatasetError: ``folder`` holds none.
    """
    images = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in suffixes and path.is_file()
    )
    if not images:
        raise DatasetError(f"no image files ({', '.join(suffixes)}) found under {folder}")
    return images


def pair_samples(
    images: Iterable[Path],
    candidates: Callable[[Path], Sequence[tuple[Path, LabelFormat]]],
    domain: str | Callable[[Path], str],
) -> list[Sample]:
    """Pair each image with the first of its ``candidates(image)`` label files that exists.

    Args:
        images: the image files, in sample order.
        candidates: (label path, format) pairs to try for an image, in order of preference.
        domain: the samples' domain, or a function of the image path giving it.

    Raises:
        DatasetError: some images have no label file; the message names them and the files
            looked for.
    """
    samples, missing = [], []
    for image in images:
        tried = candidates(image)
        found = next(((path, kind) for path, kind in tried if path.is_file()), None)
        if found is None:
            missing.append(f"{image} (looked for {' or '.join(str(p) for p, _ in tried)})")
            continue
        where = domain(image) if callable(domain) else domain
        samples.append(Sample(image, found[0], found[1], where))
    if missing:
        shown = "; ".join(missing[:3]) + ("; ..." if len(missing) > 3 else "")
        raise DatasetError(
            f"{len(missing)} image(s) have no label file: {shown}. Add the labels or remove "
            "those images"
        )
    _log.debug("paired %d samples", len(samples))
    return samples


def require_folder(path: Path, layout: str) -> Path:
    """``path`` when it is a folder, else a :class:`DatasetError` showing the expected layout."""
    if not path.is_dir():
        raise DatasetError(f"folder {path} does not exist; expected layout: {layout}")
    return path
