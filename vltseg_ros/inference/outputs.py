"""What is published for one segmented frame, as arrays and fields, before any message exists.

The node (rclpy) and the bag tools (rosbags) both build their messages from
:func:`frame_outputs`, under the topics :func:`output_topic` names:
``<camera>/segmentation/{mask,confidence,overlay,anomaly,info,camera_info}``. Nothing here
imports ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from vltseg_ros.config.anomaly_methods import ANOMALY_METHODS, defaults_text, resolve_threshold
from vltseg_ros.config.class_map import BoundClassMap, load_class_map
from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.config.options import option
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.visualize import confidence_to_uint8, overlay

if TYPE_CHECKING:  # no torch import: the launch files use output_topic
    from vltseg_ros.inference.result import SegmentationResult

OUTPUTS = ("mask", "confidence", "overlay", "anomaly", "info", "camera_info")
"""The per-camera output topics, ``<camera>/segmentation/<output>``."""
MASK_ENCODING, OVERLAY_ENCODING, ANOMALY_ENCODING = "mono8", "rgb8", "32FC1"
CONFIDENCE_ENCODINGS = ("32FC1", "mono8")


LABEL_INFO = "label_info"
"""The per-camera topic of the class ids and names (vision_msgs/LabelInfo), published once and
again when they or the confidence threshold change, not per frame."""
UNLABELED = "unlabeled"
"""LabelInfo's name of mask value 255 (below the threshold, or a class the class map drops)."""


def output_topic(camera: str, output: str) -> str:
    """``<camera>/segmentation/<output>`` (``camera`` may be a namespace, e.g. ``/front``)."""
    return f"{camera.rstrip('/')}/segmentation/{output}"


def label_entries(
    class_set: ClassSetConfig, class_map: BoundClassMap | None = None
) -> list[tuple[int, str]]:
    """(mask value, class name) of every class a mask can hold, then (255, "unlabeled"): the
    class map of a vision_msgs/LabelInfo. ``class_set``: the model's; with ``class_map``, its
    declared output classes (no placeholders of unused ids)."""
    if class_map is not None:
        entries = list(class_map.labels())
    else:
        entries = list(enumerate(class_set.names))
    return [*entries, (class_set.ignore_index, UNLABELED)]


@dataclass(frozen=True)
class OutputSettings:
    """How results become outputs (node parameters, and flags of ``vltseg segment``)."""

    confidence_threshold: float = option(
        0.0,
        "Pixels whose winning-class probability is below this get mask value 255.",
        range=(0.0, 1.0),
    )
    output_resolution: str = option(
        "input",
        "Resolution of the outputs: the input image's, or the model's (the frame after "
        "test_scale, or whole_size).",
        choices=("input", "model"),
    )
    upsample: str = option(
        "scores",
        "How outputs reach the input resolution: resize class scores before the argmax (as "
        "the reference evaluates) or resize labels (cheaper, blockier).",
        choices=("scores", "labels"),
    )
    confidence_encoding: str = option(
        "32FC1",
        "Confidence image encoding: 32FC1 probability, or mono8 (probability x 255).",
        choices=CONFIDENCE_ENCODINGS,
    )
    overlay_alpha: float = option(
        0.5, "Weight of the class colors in the overlay image.", range=(0.0, 1.0)
    )
    anomaly_method: str = option(
        "rba",
        "Per-pixel anomaly score, from the raw class scores: rba (Rejected by All, -sum tanh, "
        "in [-C, 0]), max_logit (-max score), max_probability (1 - max probability), entropy "
        "(normalized, [0, 1]). Higher = more anomalous.",
        choices=ANOMALY_METHODS,
    )
    anomaly_threshold: float = option(
        math.nan,
        "Pixels whose anomaly score exceeds this count as anomalous (anomaly_fraction, the "
        "domain-shift monitor). NaN (the default; .nan in YAML): the anomaly_method's own "
        f"default ({defaults_text()}); the scores' scales differ, so a number set here is "
        "for one method.",
        range=(-1000.0, 1000.0),
    )
    class_map: str = option(
        "",
        "Class map file (YAML): the output classes (ids, names, colors) that masks, "
        "confidence, overlay and info use, each merging model classes (confidence = the sum "
        "of its members' probabilities). Empty = the model's own classes. Examples: "
        "config/class_maps/.",
    )

    @property
    def threshold(self) -> float:
        """The anomaly threshold in force: ``anomaly_threshold``, or the method's default."""
        return resolve_threshold(self.anomaly_method, self.anomaly_threshold)

    def load_class_map(self, model_classes: ClassSetConfig) -> BoundClassMap | None:
        """The ``class_map`` file bound to the model's classes; None when not set.

        Raises:
            ConfigError: a missing or bad file, or members that are no model class.
        """
        return load_class_map(self.class_map, model_classes) if self.class_map else None

    def predict_options(self, class_map: BoundClassMap | None = None) -> dict[str, Any]:
        """Keyword arguments of :meth:`Segmenter.predict_frames` (with the summary; with
        ``class_map`` from :meth:`load_class_map` when one is given)."""
        options = {
            "confidence_threshold": self.confidence_threshold,
            "output_size": "model" if self.output_resolution == "model" else None,
            "resize": self.upsample,
            "summarize": True,
            "anomaly_method": self.anomaly_method,
            "anomaly_threshold": self.threshold,
        }
        return options if class_map is None else {**options, "class_map": class_map}


@dataclass(frozen=True)
class FrameOutputs:
    """One frame's outputs.

    Attributes:
        mask: (H, W) uint8 train ids, 255 below the threshold (mono8).
        confidence: (H, W) float32 in [0, 1] (32FC1) or uint8 x 255 (mono8).
        confidence_encoding: "32FC1" or "mono8".
        overlay: (H, W, 3) uint8 RGB class colors over the frame, or None when not wanted.
        info: the SegmentationInfo fields but the header.
        anomaly: (H, W) float32 anomaly score (32FC1), or None when not wanted.
    """

    mask: np.ndarray
    confidence: np.ndarray
    confidence_encoding: Literal["32FC1", "mono8"]
    overlay: np.ndarray | None
    info: dict[str, Any]
    anomaly: np.ndarray | None = None

    def images(self) -> dict[str, tuple[np.ndarray, str]]:
        """output -> (array, encoding) of the image outputs present."""
        images = {
            "mask": (self.mask, MASK_ENCODING),
            "confidence": (self.confidence, self.confidence_encoding),
        }
        if self.overlay is not None:
            images["overlay"] = (self.overlay, OVERLAY_ENCODING)
        if self.anomaly is not None:
            images["anomaly"] = (self.anomaly, ANOMALY_ENCODING)
        return images


def frame_outputs(
    result: SegmentationResult,
    image: np.ndarray,
    color_order: Literal["rgb", "bgr"],
    settings: OutputSettings,
    *,
    class_set: ClassSetConfig,
    with_overlay: bool,
    with_anomaly: bool = True,
    shift_score: float = -1.0,
    class_map: BoundClassMap | None = None,
    **info: Any,
) -> FrameOutputs:
    """The outputs of ``result`` (with its summary) for the (H, W, 3) uint8 ``image`` in
    ``color_order`` it came from; with ``with_anomaly``, the anomaly image is the result's
    (when it has one). ``class_set``: the model's; with ``class_map`` (the one the result was
    predicted with) its output classes give the overlay colors and class names instead.

    ``shift_score``: the frame's domain-shift score (:mod:`.domain_shift`), -1 when
    there is no calibration to compare with. ``info`` gives the other info fields the result
    does not know: camera, model, checkpoint, inference_latency, end_to_end_latency (s),
    batch_frames.
    """
    summary = result.summary
    if class_map is not None:
        class_set = class_map.classes
    if len(summary.class_fraction) != class_set.num_classes:
        raise ConfigError(
            f"the result has {len(summary.class_fraction)} classes but class set "
            f"{class_set.name!r} {class_set.num_classes}: predict with the class map it shows"
        )
    height, width = result.labels.shape
    confidence = result.confidence
    if settings.confidence_encoding == "mono8":
        confidence = confidence_to_uint8(confidence)
    blended = None
    if with_overlay:
        rgb = image if color_order == "rgb" else image[..., ::-1]
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(np.ascontiguousarray(rgb), (width, height), cv2.INTER_AREA)
        blended = overlay(rgb, result.labels, class_set, settings.overlay_alpha)
    fields = {
        **info,
        "height": height,
        "width": width,
        "class_names": list(class_set.names),
        "class_fraction": summary.class_fraction.tolist(),
        "class_mean_confidence": summary.class_mean_confidence.tolist(),
        "unlabeled_fraction": float(summary.unlabeled_fraction),
        "mean_confidence": float(summary.mean_confidence),
        "confidence_threshold": float(settings.confidence_threshold),
        "anomaly_fraction": float(summary.anomaly_fraction or 0.0),
        "anomaly_method": settings.anomaly_method,
        "anomaly_threshold": settings.threshold,
        "shift_score": float(shift_score),
    }
    return FrameOutputs(
        result.labels,
        confidence,
        settings.confidence_encoding,
        blended,
        fields,
        result.anomaly if with_anomaly else None,
    )
