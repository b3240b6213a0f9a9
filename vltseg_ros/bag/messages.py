"""Serialized (CDR) messages for bags, built with the rosbags typestore (no rclpy).

Headers are given as ``stamp_ns`` (ns since the epoch) and ``frame_id``. Every builder returns
the little-endian CDR bytes that ``BagWriter.write`` stores and that rclpy's
``deserialize_message`` reads with the real message classes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vltseg_ros.bag.typestore import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    SEGMENTATION_INFO,
    typestore,
)
from vltseg_ros.errors import InvalidImageError

if TYPE_CHECKING:
    from vltseg_ros.inference.summary import ResultSummary

_NS = 1_000_000_000
# encoding -> (dtype, channels or 0 for (H, W))
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 0),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "32FC1": (np.dtype(np.float32), 0),
}
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
    """CDR of a sensor_msgs/Image holding ``array``.

    Args:
        array: uint8 (H, W) for mono8, uint8 (H, W, 3) for rgb8 / bgr8 (channels in that
            order), float32 (H, W) for 32FC1 (native byte order, recorded in is_bigendian).
        encoding: mono8, rgb8, bgr8 or 32FC1.

    Raises:
        InvalidImageError: unknown encoding, or an array whose dtype or shape does not fit.
    """
    if encoding not in _ENCODINGS:
        raise InvalidImageError(
            f"cannot write encoding {encoding!r}; use one of {', '.join(_ENCODINGS)}"
        )
    dtype, channels = _ENCODINGS[encoding]
    array = np.asarray(array)
    shape_ok = array.ndim == 2 if channels == 0 else array.ndim == 3 and array.shape[2] == 3
    if array.dtype != dtype or not shape_ok or 0 in array.shape:
        expected = "(H, W)" if channels == 0 else "(H, W, 3)"
        raise InvalidImageError(
            f"{encoding} image must be {dtype} {expected}, got {array.dtype} {array.shape}"
        )
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    msg = typestore().types[IMAGE](
        header=header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(sys.byteorder == "big" and dtype.itemsize > 1),
        step=data.size // height,
        data=data,
    )
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


def segmentation_info_cdr(
    stamp_ns: int,
    frame_id: str,
    *,
    camera: str,
    model: str,
    checkpoint: str,
    class_names: Sequence[str],
    summary: ResultSummary,
    shape: tuple[int, int],
    confidence_threshold: float,
    inference_latency: float,
    end_to_end_latency: float,
    batch_frames: int,
) -> bytes:
    """CDR of a vltseg_ros/msg/SegmentationInfo, filled as the node fills it.

    Args:
        summary: the result's per-class fractions and confidences (:class:`ResultSummary`).
        shape: (height, width) of the mask.
        inference_latency, end_to_end_latency: seconds.
    """
    msg = typestore().types[SEGMENTATION_INFO](
        header=header(stamp_ns, frame_id),
        camera=camera,
        model=model,
        checkpoint=checkpoint,
        height=int(shape[0]),
        width=int(shape[1]),
        class_names=list(class_names),
        class_fraction=np.asarray(summary.class_fraction, dtype=np.float32),
        class_mean_confidence=np.asarray(summary.class_mean_confidence, dtype=np.float32),
        unlabeled_fraction=float(summary.unlabeled_fraction),
        mean_confidence=float(summary.mean_confidence),
        confidence_threshold=float(confidence_threshold),
        inference_latency=float(inference_latency),
        end_to_end_latency=float(end_to_end_latency),
        batch_frames=int(batch_frames),
    )
    return bytes(typestore().serialize_cdr(msg, SEGMENTATION_INFO))
