"""Build a data set by name: ``build_dataset("acdc", "/data/acdc", "val")``, or from the CLI
form ``NAME:ROOT`` with :func:`parse_dataset_spec`.

Names and the folder layouts they read (each reader's module docstring has the details):

- ``cityscapes``: :mod:`vltseg_ros.data.cityscapes` (``leftImg8bit`` + ``gtFine``);
- ``acdc``: :mod:`vltseg_ros.data.cityscapes` (``rgb_anon`` + ``gt``, per condition);
- ``gta5``, ``synthia``: :mod:`vltseg_ros.data.gta5_synthia`;
- ``bdd100k``: :mod:`vltseg_ros.data.bdd100k`;
- ``mapillary``: :mod:`vltseg_ros.data.mapillary` (Vistas v1.2).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from vltseg_ros.data.bdd100k import bdd100k_samples
from vltseg_ros.data.cityscapes import acdc_samples, cityscapes_samples
from vltseg_ros.data.dataset import Sample, SegmentationDataset, Transform
from vltseg_ros.data.gta5_synthia import gta5_samples, synthia_samples
from vltseg_ros.data.mapillary import mapillary_samples
from vltseg_ros.errors import DatasetError

_log = logging.getLogger(__name__)

_READERS: dict[str, Callable[[Path, str], list[Sample]]] = {
    "cityscapes": cityscapes_samples,
    "gta5": gta5_samples,
    "synthia": synthia_samples,
    "acdc": acdc_samples,
    "bdd100k": bdd100k_samples,
    "mapillary": mapillary_samples,
}
DATASET_NAMES = tuple(_READERS)
"""The data set names :func:`build_dataset` accepts."""
_ALIASES = {"gta": "gta5", "bdd": "bdd100k", "mapillary_vistas": "mapillary"}


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    *,
    conditions: Sequence[str] | None = None,
    transform: Transform | None = None,
) -> SegmentationDataset:
    """The samples of one split of a data set in its downloaded layout.

    Args:
        name: one of :data:`DATASET_NAMES` (``gta`` and ``bdd`` are accepted too).
        root: the data set's root folder.
        split: the split (``train``, ``val``; ``all`` for GTA5 / SYNTHIA; see the readers).
        conditions: ACDC only: a subset of fog, night, rain, snow (default: all four).
        transform: optional ``transform(image, labels, key)`` applied to each item.

    Returns:
        A :class:`SegmentationDataset` whose items are ``{"image", "labels", "name",
        "domain"}`` (see :mod:`vltseg_ros.data.dataset`).

    Raises:
        DatasetError: an unknown name, conditions for a data set that has none, or a layout
            problem (missing folder, image without label).
    """
    key = canonical_name(name)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{key} root {root} does not exist or is not a folder")
    if key == "acdc":
        samples = acdc_samples(root, split, conditions)
    elif conditions is not None:
        raise DatasetError(f"conditions are an ACDC option; {key} has none")
    else:
        samples = _READERS[key](root, split)
    _log.info("%s %s: %d samples from %s", key, split, len(samples), root)
    return SegmentationDataset(samples, transform=transform, name=f"{key}/{split}")


def parse_dataset_spec(spec: str) -> tuple[str, Path]:
    """``"NAME:ROOT"`` (e.g. ``acdc:/data/acdc``) -> (canonical name, root path).

    Raises:
        DatasetError: no ``:``, an empty root, or an unknown name.
    """
    name, root = split_spec(spec, "data set", "cityscapes:/data/cityscapes", DATASET_NAMES)
    return canonical_name(name), root


def split_spec(spec: str, what: str, example: str, names: Sequence[str]) -> tuple[str, Path]:
    """``"NAME:ROOT"`` -> (NAME as given, ROOT with ``~`` expanded).

    Raises:
        DatasetError: no ``:`` or an empty root; the message names ``what``, shows ``example``
            and lists ``names``.
    """
    name, sep, root = spec.partition(":")
    if not sep or not root.strip():
        raise DatasetError(
            f"{what} {spec!r} is not NAME:ROOT (e.g. {example}); names: {', '.join(names)}"
        )
    return name, Path(root.strip()).expanduser()


def canonical_name(name: str) -> str:
    """A data set name in its canonical spelling (``GTA`` -> ``gta5``).

    Raises:
        DatasetError: the name is not a known data set.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _READERS:
        raise DatasetError(f"unknown data set {name!r}; choose from {', '.join(DATASET_NAMES)}")
    return key
