"""One camera through vltseg_node.

    ros2 launch vltseg_ros vltseg.launch.py image:=/front/image_raw \\
        checkpoint:=/path/to/weights.safetensors device:=cuda precision:=fp16

The node's inputs (camera ``camera``: ``camera/image_raw``, or ``camera/image_raw/compressed``
with ``transport:=compressed``, and ``camera/camera_info``) are remapped to the ``image`` and
``camera_info`` topics; its outputs stay relative to ``namespace``:
``/<namespace>/camera/segmentation/{mask,confidence,overlay,info,camera_info}`` and
``/<namespace>/classes`` (``/camera/segmentation/mask`` with the defaults). Parameters:
``params_file``, then the arguments over it (``model`` and ``checkpoint`` only when given).

A plain ``Node``: vltseg_node is a lifecycle node that configures and activates itself
(``autostart`` parameter), so the launch side needs no lifecycle wiring (nothing here waits
for its states); ``ros2 lifecycle`` still drives it.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch_ros.actions import Node

from vltseg_ros.ros.launch.actions import (
    declare_arguments,
    large_data_actions,
    vltseg_node_action,
)
from vltseg_ros.ros.launch.setups import CAMERA_ARGUMENTS, NODE_ARGUMENTS, single_camera


def _launch_node(context: LaunchContext) -> list[Node]:
    return [vltseg_node_action(single_camera(context.launch_configurations))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "image",
                default_value="/camera/image_raw",
                description="Input image topic (sensor_msgs/Image); with transport:=compressed "
                "the base topic, the node reads <image>/compressed",
            ),
            DeclareLaunchArgument(
                "camera_info",
                default_value="/camera/camera_info",
                description="Input CameraInfo topic; empty = none",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="Node namespace; the outputs are <namespace>/camera/segmentation/*",
            ),
            *declare_arguments(NODE_ARGUMENTS, CAMERA_ARGUMENTS),
            *large_data_actions(),
            OpaqueFunction(function=_launch_node),
        ]
    )
