"""rclpy messages of the outputs (:mod:`vltseg_ros.inference.outputs`), the class set and
camera_info."""

from __future__ import annotations

import copy
from array import array as PyArray
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import LabelInfo, VisionClass

from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.inference.outputs import OUTPUTS, FrameOutputs
from vltseg_ros.io.image_messages import image_layout
from vltseg_ros.msg import ClassSet, SegmentationInfo

OUTPUT_TYPES: dict[str, type] = dict(
    zip(OUTPUTS, (Image, Image, Image, Image, SegmentationInfo, CameraInfo), strict=True)
)
"""The message class of each per-camera output (:data:`vltseg_ros.inference.outputs.OUTPUTS`)."""


def type_name(message_class: type) -> str:
    """``sensor_msgs/msg/Image`` for ``sensor_msgs.msg.Image``."""
    return f"{message_class.__module__.split('.')[0]}/msg/{message_class.__name__}"


def array_to_image(array: np.ndarray, encoding: str, header: Header) -> Image:
    """A sensor_msgs/Image of ``array`` (see :func:`vltseg_ros.io.image_messages.image_layout`
    for encodings and shapes) with ``header`` (the same object).

    The pixels are copied once (``array.array.frombytes``: 0.1 ms for 6 MiB, where assigning
    an ndarray to ``msg.data`` takes ~300 ms).

    Raises:
        InvalidImageError: an encoding or array that does not fit.
        TypeError: ``header`` is not a std_msgs/Header.
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a std_msgs.msg.Header, got {type(header).__name__}")
    layout = image_layout(array, encoding)
    data = PyArray("B")
    data.frombytes(memoryview(layout.data))
    # check_fields=True makes the data setter keep this array.array instead of copying it again
    fields = {k: v for k, v in layout._asdict().items() if k != "data"}
    msg = Image(check_fields=True, header=header, **fields)
    msg.data = data
    return msg


def output_messages(outputs: FrameOutputs, header: Header) -> dict[str, Any]:
    """output -> message of one frame (mask, confidence, overlay and anomaly if made, info)."""
    messages: dict[str, Any] = {
        name: array_to_image(array, encoding, header)
        for name, (array, encoding) in outputs.images().items()
    }
    messages["info"] = SegmentationInfo(header=header, **outputs.info)
    return messages


def class_set_message(class_set: ClassSetConfig, stamp: Time) -> ClassSet:
    """The class names and palette (RGB 0-255 -> ColorRGBA 0-1) as a ClassSet message."""
    return ClassSet(
        header=Header(stamp=stamp),
        name=class_set.name,
        names=list(class_set.names),
        colors=[
            ColorRGBA(r=r / 255, g=g / 255, b=b / 255, a=1.0) for r, g, b in class_set.palette
        ],
        ignore_index=class_set.ignore_index,
    )


def label_info_message(entries: list[tuple[int, str]], threshold: float, stamp: Time) -> LabelInfo:
    """vision_msgs/LabelInfo of a camera's masks: ``entries`` (mask value, class name), from
    :func:`vltseg_ros.inference.outputs.label_entries`, and the confidence ``threshold`` in
    force (pixels below it are 255, "unlabeled")."""
    return LabelInfo(
        header=Header(stamp=stamp),
        class_map=[VisionClass(class_id=i, class_name=name) for i, name in entries],
        threshold=float(threshold),
    )


def scaled_camera_info(info: CameraInfo, header: Header, height: int, width: int) -> CameraInfo:
    """``info`` for an image resized to (height, width), with ``header``.

    The intrinsics K and projection P are scaled per axis; distortion and rectification are
    unchanged (a resize does not change them). Binning and ROI are reset, as the published
    image is a plain resize of the full frame.
    """
    out = copy.copy(info)
    out.header = header
    if (info.height, info.width) == (height, width) or not info.height or not info.width:
        out.height, out.width = height, width
        return out
    sy, sx = height / info.height, width / info.width
    k = np.asarray(info.k, dtype=float).reshape(3, 3)
    p = np.asarray(info.p, dtype=float).reshape(3, 4)
    k[0] *= sx
    k[1] *= sy
    p[0] *= sx
    p[1] *= sy
    out.k, out.p = k.ravel().tolist(), p.ravel().tolist()
    out.height, out.width = height, width
    out.binning_x = out.binning_y = 0
    out.roi = type(info.roi)()
    return out
