"""One camera's subscriptions, output publishers and health."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import LabelInfo

from vltseg_ros.inference.outputs import LABEL_INFO, output_topic
from vltseg_ros.io.image_messages import ColorOrder, compressed_to_array, image_to_array
from vltseg_ros.ros.node.health import CameraHealth
from vltseg_ros.ros.node.messages import OUTPUT_TYPES, scaled_camera_info
from vltseg_ros.ros.node.settings import Camera, EndpointQos


def decode(message: Image | CompressedImage, max_pixels: int) -> tuple[np.ndarray, ColorOrder]:
    """uint8 (H, W, 3) frame and its color order from a raw or compressed image message of
    at most ``max_pixels`` pixels (a compressed one is checked before it is decoded)."""
    if isinstance(message, CompressedImage):
        return compressed_to_array(message, max_pixels)
    return image_to_array(message, max_pixels)


def qos_profile(endpoint: EndpointQos) -> QoSProfile:
    """The rclpy QoS of one side of the node (volatile, keep last ``depth``)."""
    best_effort = endpoint.reliability == "best_effort"
    return QoSProfile(
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        history=HistoryPolicy.KEEP_LAST,
        depth=endpoint.depth,
        durability=DurabilityPolicy.VOLATILE,
    )


class CameraIO:
    """Publishers (lifecycle-managed) of ``<camera>/segmentation/*``, subscriptions and the
    :class:`CameraHealth` of one camera."""

    def __init__(
        self, node: LifecycleNode, camera: Camera, output_qos: QoSProfile, latched: QoSProfile
    ) -> None:
        self.camera = camera
        self.health = CameraHealth(f"{node.get_name()}: camera {camera.name}")
        self.publishers = {
            name: node.create_lifecycle_publisher(
                kind, output_topic(camera.name, name), output_qos
            )
            for name, kind in OUTPUT_TYPES.items()
        }
        # like CameraInfo in a driver, but latched: a subscriber that comes later still gets it
        self.label_info = node.create_publisher(
            LabelInfo, output_topic(camera.name, LABEL_INFO), latched
        )
        self.subscriptions: list[Any] = []
        self.camera_info: CameraInfo | None = None

    @property
    def overlay_wanted(self) -> bool:
        """The overlay is made only while someone subscribes to it."""
        return self.publishers["overlay"].get_subscription_count() > 0

    @property
    def anomaly_wanted(self) -> bool:
        """The anomaly image is copied and published only while someone subscribes to it."""
        return self.publishers["anomaly"].get_subscription_count() > 0

    def subscribe(
        self,
        node: LifecycleNode,
        qos: QoSProfile,
        callback: Callable[[str, Image | CompressedImage], None],
    ) -> None:
        """Subscribe to the image (raw or compressed) and, if configured, camera_info topics."""
        settings, name = self.camera.settings, self.camera.name
        kind = CompressedImage if settings.transport == "compressed" else Image
        self.subscriptions.append(
            node.create_subscription(
                kind, settings.subscribed_topic, lambda m: callback(name, m), qos
            )
        )
        if settings.camera_info_topic:
            self.subscriptions.append(
                node.create_subscription(
                    CameraInfo, settings.camera_info_topic, self._on_camera_info, qos
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
        node.destroy_publisher(self.label_info)

    def publish(self, messages: dict[str, Any], header: Header) -> None:
        """Publish a frame's output messages, and its camera_info scaled to the mask's size
        when one was received."""
        for name, message in messages.items():
            self.publishers[name].publish(message)
        if self.camera_info is not None:
            mask = messages["mask"]
            self.publishers["camera_info"].publish(
                scaled_camera_info(self.camera_info, header, mask.height, mask.width)
            )

    def _on_camera_info(self, message: CameraInfo) -> None:
        self.camera_info = message
