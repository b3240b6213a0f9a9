"""Labels and anomaly truth from folders, matched to a bag's frames by order: the k-th image
message of the bag (:attr:`~vltseg_ros.bag.reading.BagFrame.index` k) gets the k-th file in
sorted relative-path order, the order ``vltseg make-bag`` writes frames in."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vltseg_ros.bag.frames import FramePair, anomaly_label_files, label_files, read_label
from vltseg_ros.bag.topics import BagTopics
from vltseg_ros.errors import BagError

_TRUTH_VALUES = np.array([0, 1, 255], np.uint8)


def folder_labels(labels_dir: Path | None, topics: BagTopics) -> list[FramePair] | None:
    """The label files of ``labels_dir``, one per image message in order (None without a
    folder); a :class:`BagError` for a missing or empty folder or a count other than the
    frames'."""
    if labels_dir is None:
        return None
    return _by_order(label_files(labels_dir), f"labels folder {labels_dir}", "labels", topics)


def folder_truths(folder: Path | None, topics: BagTopics) -> list[Path] | None:
    """The anomaly truth PNG files of ``folder``, one per image message in order (None without
    a folder); errors as :func:`folder_labels`."""
    if folder is None:
        return None
    files = anomaly_label_files(folder)
    return _by_order(files, f"anomaly labels folder {folder}", "anomaly labels", topics)


def _by_order(files: list, where: str, what: str, topics: BagTopics) -> list:
    """The files, to be matched to the image messages by order: as many as there are."""
    if len(files) != topics.image_count:
        raise BagError(
            f"{where} has {len(files)} files but topic {topics.image_topic} has "
            f"{topics.image_count} messages; {what} are matched to frames by order, so the "
            "counts must be equal"
        )
    return files


def read_folder_label(pair: FramePair | None, shape: tuple[int, ...], stamp: int) -> np.ndarray:
    """The (H, W) uint8 train ids of ``pair``'s label file; a :class:`BagError` when no file
    is left (``pair`` None) or the label is not of the frame's (H, W) ``shape``."""
    if pair is None or pair.label is None:
        raise BagError("the bag has more frames than the labels folder has label files")
    label = read_label(pair.label, pair.label_ids)
    if label.shape != tuple(shape):
        raise BagError(
            f"label {pair.label} is {label.shape[1]}x{label.shape[0]} (WxH) but the frame at "
            f"stamp {stamp} ns is {shape[1]}x{shape[0]}: labels must have the frame's size"
        )
    return label


def read_folder_truth(path: Path | None, shape: tuple[int, ...], stamp: int) -> np.ndarray:
    """The (H, W) uint8 anomaly truth of ``path``; a :class:`BagError` when no file is left
    (``path`` None) or the truth is not of the frame's (H, W) ``shape``."""
    if path is None:
        raise BagError("the bag has more frames than the anomaly labels folder has files")
    truth = read_label(path)
    if truth.shape != tuple(shape):
        raise BagError(
            f"anomaly label {path} is {truth.shape[1]}x{truth.shape[0]} (WxH) but the frame at "
            f"stamp {stamp} ns is {shape[1]}x{shape[0]}: anomaly labels must have the frame's "
            "size"
        )
    return truth


def checked_truth(truth: np.ndarray, stamp: int) -> np.ndarray:
    """``truth`` if it holds only 0 (in-distribution), 1 (anomaly) and 255 (void); else a
    :class:`BagError` naming the other values."""
    present = np.bincount(truth.ravel(), minlength=256) > 0
    present[_TRUTH_VALUES] = False
    other = np.flatnonzero(present)
    if other.size:
        raise BagError(
            f"anomaly truth at stamp {stamp} ns holds values {other.tolist()[:10]}; it must "
            "hold 0 (in-distribution), 1 (anomaly) or 255 (void) only"
        )
    return truth
