"""One camera's subscriptions and output publishers, and the per-frame publishing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vltseg_ros.config import ClassSetConfig
from vltseg_ros.inference.predictor import SegmentationResult
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.image_conversions import array_to_image, compressed_to_array, image_to_array
from vltseg_ros.ros.messages import (
    confidence_message,
    info_message,
    overlay_message,
    scaled_camera_info,
)
from vltseg_ros.ros.parameters import CameraSettings, NodeSettings
from vltseg_ros.ros.scheduling import PendingFrame
from vltseg_ros.ros.statistics import CameraStatistics


def decode(
    message: Image | CompressedImage, max_pixels: int
) -> tuple[np.ndarray, Literal["rgb", "bgr"]]:
    """uint8 (H, W, 3) frame and its color order from a raw or compressed image message of
    at most ``max_pixels`` pixels (a compressed one is checked before it is decoded)."""
    if isinstance(message, CompressedImage):
        return compressed_to_array(message, max_pixels)
    return image_to_array(message, max_pixels)


@dataclass(frozen=True)
class BatchContext:
    """What every frame of one inference batch shares, for its output messages."""

    settings: NodeSettings
    class_set: ClassSetConfig
    model_name: str
    checkpoint: str
    inference: float
    frames: int
    now: Callable[[], float]


@dataclass
class CameraIO:
    """Publishers (lifecycle-managed), subscriptions and statistics of one camera.

    Output topics, relative to the node's namespace: ``<camera>/segmentation/mask``,
    ``.../confidence``, ``.../overlay``, ``.../info``, ``.../camera_info``.
    """

    settings: CameraSettings
    publishers: dict[str, Any]
    stats: CameraStatistics = field(default_factory=CameraStatistics)
    subscriptions: list[Any] = field(default_factory=list)
    camera_info: CameraInfo | None = None

    @classmethod
    def create(
        cls, node: LifecycleNode, camera: CameraSettings, settings: NodeSettings
    ) -> CameraIO:
        """Create the camera's output publishers with the output QoS."""
        prefix = f"{camera.name}/segmentation"
        types = {
            "mask": Image,
            "confidence": Image,
            "overlay": Image,
            "info": SegmentationInfo,
            "camera_info": CameraInfo,
        }
        publishers = {
            key: node.create_lifecycle_publisher(msg_type, f"{prefix}/{key}", settings.output_qos)
            for key, msg_type in types.items()
        }
        return cls(camera, publishers)

    def subscribe(
        self,
        node: LifecycleNode,
        qos: QoSProfile,
        callback: Callable[[str, Image | CompressedImage], None],
    ) -> None:
        """Subscribe to the image (raw or compressed) and, if configured, camera_info topics."""
        name = self.settings.name
        msg_type = CompressedImage if self.settings.transport == "compressed" else Image
        self.subscriptions.append(
            node.create_subscription(
                msg_type, self.settings.subscribed_topic, lambda msg: callback(name, msg), qos
            )
        )
        if self.settings.camera_info_topic:
            self.subscriptions.append(
                node.create_subscription(
                    CameraInfo, self.settings.camera_info_topic, self._on_camera_info, qos
                )
            )

    def unsubscribe(self, node: LifecycleNode) -> None:
        """Destroy the subscriptions (on deactivate)."""
        for subscription in self.subscriptions:
            node.destroy_subscription(subscription)
        self.subscriptions = []

    def destroy(self, node: LifecycleNode) -> None:
        """Destroy subscriptions and publishers (on cleanup / shutdown)."""
        self.unsubscribe(node)
        for publisher in self.publishers.values():
            node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    def publish(
        self,
        frame: PendingFrame,
        image: np.ndarray,
        color_order: Literal["rgb", "bgr"],
        result: SegmentationResult,
        batch: BatchContext,
    ) -> None:
        """Publish mask, confidence, overlay (only with subscribers), info and camera_info.

        Every output carries the input message's header (stamp and frame_id).
        """
        header = frame.message.header
        settings = batch.settings
        height, width = result.labels.shape
        pubs = self.publishers
        pubs["mask"].publish(array_to_image(result.labels, "mono8", header))
        pubs["confidence"].publish(
            confidence_message(result.confidence, settings.confidence_encoding, header)
        )
        if pubs["overlay"].get_subscription_count() > 0:
            pubs["overlay"].publish(
                overlay_message(
                    image,
                    color_order,
                    result.labels,
                    batch.class_set,
                    settings.overlay_alpha,
                    header,
                )
            )
        if self.camera_info is not None:
            pubs["camera_info"].publish(
                scaled_camera_info(self.camera_info, header, height, width)
            )
        now = batch.now()
        end_to_end = frame.age(now)
        pubs["info"].publish(
            info_message(
                header,
                self.settings.name,
                result.summary,
                (height, width),
                {
                    "model": batch.model_name,
                    "checkpoint": batch.checkpoint,
                    "class_names": list(batch.class_set.names),
                    "confidence_threshold": settings.confidence_threshold,
                    "inference_latency": batch.inference,
                    "end_to_end_latency": end_to_end,
                    "batch_frames": batch.frames,
                },
            )
        )
        self.stats.output(end_to_end, batch.inference)

    def _on_camera_info(self, message: CameraInfo) -> None:
        self.camera_info = message
