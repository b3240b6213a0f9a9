"""Building the node's output messages from segmentation results (translation only)."""

from __future__ import annotations

import copy

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header

from vltseg_ros.config import ClassSetConfig
from vltseg_ros.inference.summary import ResultSummary
from vltseg_ros.msg import ClassSet, SegmentationInfo
from vltseg_ros.ros.image_conversions import array_to_image
from vltseg_ros.visualize import confidence_to_uint8, overlay


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


def confidence_message(confidence: np.ndarray, encoding: str, header: Header) -> Image:
    """(H, W) float32 confidence in [0, 1] as 32FC1, or mono8 scaled by 255."""
    if encoding == "mono8":
        return array_to_image(confidence_to_uint8(confidence), "mono8", header)
    return array_to_image(confidence, "32FC1", header)


def overlay_message(
    image: np.ndarray,
    color_order: str,
    labels: np.ndarray,
    class_set: ClassSetConfig,
    alpha: float,
    header: Header,
) -> Image:
    """rgb8 overlay of the class colors on the frame, resized to the labels' size if needed.

    Args:
        image: (H, W, 3) uint8 frame in ``color_order``.
        labels: (h, w) uint8 train ids at the output resolution.
    """
    rgb = image if color_order == "rgb" else image[..., ::-1]
    if rgb.shape[:2] != labels.shape:
        import cv2

        rgb = cv2.resize(np.ascontiguousarray(rgb), labels.shape[::-1], cv2.INTER_AREA)
    return array_to_image(overlay(rgb, labels, class_set, alpha), "rgb8", header)


def info_message(
    header: Header,
    camera: str,
    summary: ResultSummary,
    shape: tuple[int, int],
    fields: dict[str, object],
) -> SegmentationInfo:
    """A SegmentationInfo from a result summary; ``fields`` fills the scalar fields (model,
    checkpoint, class_names, confidence_threshold, latencies, batch_frames)."""
    return SegmentationInfo(
        header=header,
        camera=camera,
        height=shape[0],
        width=shape[1],
        class_fraction=summary.class_fraction.tolist(),
        class_mean_confidence=summary.class_mean_confidence.tolist(),
        unlabeled_fraction=summary.unlabeled_fraction,
        mean_confidence=summary.mean_confidence,
        **fields,
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
