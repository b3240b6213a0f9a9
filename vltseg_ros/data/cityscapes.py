"""Cityscapes and ACDC as downloaded (file-name rules: :mod:`vltseg_ros.data.frame_files`).

Cityscapes (``leftImg8bit_trainvaltest.zip`` + ``gtFine_trainvaltest.zip`` unpacked in one
root)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (preferred)
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (else)

``split`` is ``train``, ``val`` or ``test`` (test labels are all "unlabeled": not for metrics).
``*_labelTrainIds.png`` (written by cityscapesscripts' ``createTrainIdLabelImgs``) hold train
ids; ``*_labelIds.png`` are mapped with cityscapesscripts' table (reading a sample whose
labelIds file holds a value that is no Cityscapes labelId raises :class:`DatasetError`).
Domain: ``cityscapes``.

ACDC (``rgb_anon_trainvaltest.zip`` + ``gt_trainval.zip`` unpacked in one root)::

    <root>/rgb_anon/<condition>/<split>/<sequence>/<name>_rgb_anon.png
    <root>/gt/<condition>/<split>/<sequence>/<name>_gt_labelTrainIds.png   (preferred)
    <root>/gt/<condition>/<split>/<sequence>/<name>_gt_labelIds.png        (else)

``condition`` is one of fog, night, rain, snow; ``split`` is ``train`` or ``val`` (the test
split has no public labels; the ``<split>_ref`` folders of unlabeled reference images are not
read). Domain: ``acdc/<condition>``, so evaluation can report each condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vltseg_ros.data.dataset import Sample, require_folder
from vltseg_ros.data.frame_files import FramePair, find_frames
from vltseg_ros.errors import DatasetError

CITYSCAPES_LAYOUT = (
    "<root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png with "
    "<root>/gtFine/<split>/<city>/*_gtFine_labelTrainIds.png (or *_gtFine_labelIds.png)"
)
ACDC_LAYOUT = (
    "<root>/rgb_anon/<condition>/<split>/<sequence>/*_rgb_anon.png with "
    "<root>/gt/<condition>/<split>/<sequence>/*_gt_labelTrainIds.png (or *_gt_labelIds.png)"
)
ACDC_CONDITIONS = ("fog", "night", "rain", "snow")
"""ACDC's adverse conditions, in the order samples are listed."""


def cityscapes_samples(root: Path, split: str) -> list[Sample]:
    """The labeled frames of a Cityscapes split, sorted by path (layout: module docstring).

    Raises:
        DatasetError: a folder is missing or an image has no label file.
    """
    root = Path(root)
    images = require_folder(root / "leftImg8bit" / split, CITYSCAPES_LAYOUT)
    labels = require_folder(root / "gtFine" / split, CITYSCAPES_LAYOUT)
    return _paired(images, labels, "cityscapes", "_leftImg8bit", "_gtFine")


def acdc_samples(root: Path, split: str, conditions: Sequence[str] | None = None) -> list[Sample]:
    """The labeled frames of an ACDC split, condition by condition (layout: module docstring).

    Args:
        root: the ACDC root (holding ``rgb_anon`` and ``gt``).
        split: ``train`` or ``val``.
        conditions: a subset of :data:`ACDC_CONDITIONS`; None for all four.

    Raises:
        DatasetError: an unknown condition, a missing folder, or an image without a label file.
    """
    root = Path(root)
    chosen = tuple(conditions) if conditions is not None else ACDC_CONDITIONS
    unknown = sorted(set(chosen) - set(ACDC_CONDITIONS))
    if unknown or not chosen:
        raise DatasetError(
            f"unknown ACDC condition(s) {unknown or '(none given)'}; choose from "
            f"{', '.join(ACDC_CONDITIONS)}"
        )
    samples = []
    for condition in dict.fromkeys(chosen):
        images = require_folder(root / "rgb_anon" / condition / split, ACDC_LAYOUT)
        labels = require_folder(root / "gt" / condition / split, ACDC_LAYOUT)
        samples += _paired(images, labels, f"acdc/{condition}", "_rgb_anon", "_gt")
    return samples


def _paired(images: Path, labels: Path, domain: str, image_tag: str, gt_tag: str) -> list[Sample]:
    pairs = find_frames(images, labels)
    missing = [pair.image for pair in pairs if pair.label is None]
    if missing:
        expected = _expected_label(missing[0], image_tag, gt_tag)
        raise DatasetError(
            f"{len(missing)} image(s) under {images} have no label file under {labels}, e.g. "
            f"{missing[0]} (looked for {expected}): add the labels or remove those images"
        )
    return [_sample(pair, domain) for pair in pairs]


def _sample(pair: FramePair, domain: str) -> Sample:
    if pair.label is None:  # checked by the caller
        raise DatasetError(f"image {pair.image} has no label file")
    return Sample(pair.image, pair.label, pair.label_ids, domain)


def _expected_label(image: Path, image_tag: str, gt_tag: str) -> str:
    base = image.stem.removesuffix(image_tag)
    return f"{base}{gt_tag}_labelTrainIds.png or {base}{gt_tag}_labelIds.png"
