"""Several cameras through ONE vltseg_node: one model in memory, their frames batched together.

    ros2 launch vltseg_ros multi_camera.launch.py cameras:=front,left,right \\
        checkpoint:=/path/to/weights.safetensors device:=cuda precision:=fp16

Camera ``<name>`` reads ``/<name>/image_raw`` and ``/<name>/camera_info`` (the ``image`` and
``camera_info`` arguments with ``{camera}`` replaced by the name, set as the node's
``<name>.image_topic`` / ``<name>.camera_info_topic`` parameters) and publishes
``/<namespace>/<name>/segmentation/{mask,confidence,overlay,info,camera_info}``. The camera
list is split in an OpaqueFunction (vltseg_ros.ros.launch.setups.multi_camera), no eval.
A plain ``Node``: vltseg_node activates itself (``autostart`` parameter).
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
from vltseg_ros.ros.launch.setups import CAMERA_ARGUMENTS, NODE_ARGUMENTS, multi_camera


def _launch_node(context: LaunchContext) -> list[Node]:
    return [vltseg_node_action(multi_camera(context.launch_configurations))]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "cameras",
                default_value="front,left,right",
                description="Camera names, comma-separated (letters, digits, _)",
            ),
            DeclareLaunchArgument(
                "image",
                default_value="/{camera}/image_raw",
                description="Image topic of each camera, {camera} = its name; with "
                "transport:=compressed the base topic (<image>/compressed is read)",
            ),
            DeclareLaunchArgument(
                "camera_info",
                default_value="/{camera}/camera_info",
                description="CameraInfo topic of each camera, {camera} = its name; empty = none",
            ),
            DeclareLaunchArgument(
                "namespace",
                default_value="",
                description="Node namespace; outputs are <namespace>/<camera>/segmentation/*",
            ),
            *declare_arguments(NODE_ARGUMENTS, CAMERA_ARGUMENTS),
            *large_data_actions(),
            OpaqueFunction(function=_launch_node),
        ]
    )
