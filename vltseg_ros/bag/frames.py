"""Image / label files in folders for the bag tools (``vltseg make-bag``, ``vltseg bag-eval``).

The naming and pairing rules (Cityscapes, ACDC, plain names), the readers and the Cityscapes
labelId conversion are :mod:`vltseg_ros.data.frame_files` and
:func:`vltseg_ros.data.label_maps.cityscapes_to_train_ids`, shared with the data set readers;
the functions here are those, each raising :class:`~vltseg_ros.errors.BagError` (with the same
message) where the shared one raises :class:`~vltseg_ros.errors.DatasetError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from vltseg_ros.data import frame_files, label_maps
from vltseg_ros.data.frame_files import IMAGE_SUFFIXES, FramePair, LabelIds
from vltseg_ros.errors import BagError, DatasetError

__all__ = [
    "IMAGE_SUFFIXES",
    "FramePair",
    "LabelIds",
    "anomaly_label_files",
    "check_sizes",
    "cityscapes_to_train_ids",
    "find_frames",
    "label_files",
    "load_frame",
    "read_image",
    "read_label",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _raising_bag_error(function: Callable[_P, _T]) -> Callable[_P, _T]:
    """``function`` with its :class:`DatasetError` re-raised as :class:`BagError`."""

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return function(*args, **kwargs)
        except DatasetError as exc:
            raise BagError(str(exc)) from exc

    return wrapper


find_frames = _raising_bag_error(frame_files.find_frames)
label_files = _raising_bag_error(frame_files.label_files)
anomaly_label_files = _raising_bag_error(frame_files.anomaly_label_files)
check_sizes = _raising_bag_error(frame_files.check_sizes)
read_image = _raising_bag_error(frame_files.read_image)
read_label = _raising_bag_error(frame_files.read_label)
load_frame = _raising_bag_error(frame_files.load_frame)
cityscapes_to_train_ids = _raising_bag_error(label_maps.cityscapes_to_train_ids)
