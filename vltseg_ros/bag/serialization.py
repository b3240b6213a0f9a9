"""Serialized (CDR) messages for bags, built with the rosbags typestore (no rclpy).

Headers are given as ``stamp_ns`` (ns since the epoch) and ``frame_id``. Every builder returns
the little-endian CDR bytes that ``BagWriter.write`` stores and that rclpy's
``deserialize_message`` reads with the real message classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vltseg_ros.bag.typestore import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    LABEL_INFO,
    SEGMENTATION_INFO,
    VISION_CLASS,
    find_vision_msgs_dir,
    typestore,
)
from vltseg_ros.inference.outputs import FrameOutputs
from vltseg_ros.io.image_messages import image_layout

_NS = 1_000_000_000
_FLOAT_ARRAYS = ("class_fraction", "class_mean_confidence")
JPEG_FORMAT = "rgb8; jpeg compressed bgr8"
"""CompressedImage.format of a color JPEG, as image_transport's compressed plugin writes it."""


def header(stamp_ns: int, frame_id: str) -> object:
    """A rosbags ``std_msgs/msg/Header`` for a stamp in ns since the epoch."""
    types = typestore().types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // _NS, nanosec=stamp_ns % _NS)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def stamp_to_ns(stamp: object) -> int:
    """ns since the epoch of a ``builtin_interfaces/Time`` (rosbags or rclpy object)."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def image_cdr(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> bytes:
    """CDR of a sensor_msgs/Image holding ``array`` (see
    :func:`vltseg_ros.io.image_messages.image_layout` for the encodings and shapes).

    Raises:
        InvalidImageError: unknown encoding, or an array whose dtype or shape does not fit.
    """
    layout = image_layout(np.asarray(array), encoding)
    msg = typestore().types[IMAGE](header=header(stamp_ns, frame_id), **layout._asdict())
    return bytes(typestore().serialize_cdr(msg, IMAGE))


def compressed_image_cdr(data: bytes, image_format: str, stamp_ns: int, frame_id: str) -> bytes:
    """CDR of a sensor_msgs/CompressedImage with encoded ``data`` (e.g. JPEG bytes)."""
    msg = typestore().types[COMPRESSED_IMAGE](
        header=header(stamp_ns, frame_id),
        format=image_format,
        data=np.frombuffer(data, dtype=np.uint8),
    )
    return bytes(typestore().serialize_cdr(msg, COMPRESSED_IMAGE))


def camera_info_cdr(
    height: int, width: int, stamp_ns: int, frame_id: str, focal: float | None = None
) -> bytes:
    """CDR of a sensor_msgs/CameraInfo of an undistorted pinhole camera.

    ``focal`` (pixels) defaults to the image width (about 53 degrees horizontal field of
    view); the principal point is the image center, distortion plumb_bob with zeros.
    """
    fx = fy = float(focal if focal is not None else width)
    cx, cy = width / 2.0, height / 2.0
    types = typestore().types
    msg = types[CAMERA_INFO](
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5, dtype=np.float64),
        k=np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]),
        r=np.eye(3).reshape(-1),
        p=np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )
    return bytes(typestore().serialize_cdr(msg, CAMERA_INFO))


def segmentation_info_cdr(stamp_ns: int, frame_id: str, fields: dict[str, Any]) -> bytes:
    """CDR of a vltseg_ros/msg/SegmentationInfo with ``fields`` (those of
    :attr:`vltseg_ros.inference.outputs.FrameOutputs.info`)."""
    arrays = {k: np.asarray(fields[k], np.float32) for k in _FLOAT_ARRAYS}
    msg = typestore().types[SEGMENTATION_INFO](
        header=header(stamp_ns, frame_id), **{**fields, **arrays}
    )
    return bytes(typestore().serialize_cdr(msg, SEGMENTATION_INFO))


def label_info_cdr(
    stamp_ns: int, frame_id: str, classes: list[tuple[int, str]], threshold: float
) -> bytes:
    """CDR of a vision_msgs/msg/LabelInfo: ``classes`` as ``(class_id, class_name)`` pairs
    (``class_id`` a uint16), in the order given, and the confidence ``threshold``.

    Raises:
        BagError: the vision_msgs definitions are not installed
            (:func:`vltseg_ros.bag.typestore.find_vision_msgs_dir`).
    """
    types = typestore().types
    if LABEL_INFO not in types:
        find_vision_msgs_dir()  # raises, naming where it looked
    class_map = [
        types[VISION_CLASS](class_id=int(class_id), class_name=str(name))
        for class_id, name in classes
    ]
    msg = types[LABEL_INFO](
        header=header(stamp_ns, frame_id), class_map=class_map, threshold=float(threshold)
    )
    return bytes(typestore().serialize_cdr(msg, LABEL_INFO))


def outputs_cdr(outputs: FrameOutputs, stamp_ns: int, frame_id: str) -> dict[str, bytes]:
    """output -> CDR bytes of one frame's outputs (mask, confidence, overlay if any, info)."""
    cdr = {
        name: image_cdr(array, encoding, stamp_ns, frame_id)
        for name, (array, encoding) in outputs.images().items()
    }
    cdr["info"] = segmentation_info_cdr(stamp_ns, frame_id, outputs.info)
    return cdr
