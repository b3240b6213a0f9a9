"""Launch actions that ``launch/*.launch.py`` share: argument declarations, large-data profile,
the vltseg_node process.

Imports ``launch`` and ``launch_ros``, so only the launch files import this module (the launch
files cannot import each other: they are not on ``sys.path``). What the arguments are is data
in :mod:`vltseg_ros.ros.launch.setups`, which the tests read without ROS.
"""

from __future__ import annotations

from collections.abc import Iterable

from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vltseg_ros.ros.launch.setups import LaunchArgument, NodeSetup
from vltseg_ros.ros.node.transport import PACKAGE


def declare_arguments(*groups: Iterable[LaunchArgument]) -> list[DeclareLaunchArgument]:
    """One ``DeclareLaunchArgument`` per argument of ``groups``, in order; an ``in_share``
    default becomes the path of that file in the installed package."""
    return [
        DeclareLaunchArgument(
            argument.name,
            default_value=_default(argument),
            description=argument.description,
            choices=None if argument.choices is None else list(argument.choices),
        )
        for group in groups
        for argument in group
    ]


def large_data_actions() -> list[SetEnvironmentVariable]:
    """With ``large_data:=true``, the Fast DDS large-data profile in the environment of every
    process the launch starts after these actions (see :mod:`vltseg_ros.ros.node.transport`)."""
    share = FindPackageShare(PACKAGE)
    large_data = IfCondition(LaunchConfiguration("large_data"))
    return [
        SetEnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE",
            PathJoinSubstitution([share, "config", "fastdds_large_data.xml"]),
            condition=large_data,
        ),
        SetEnvironmentVariable("RMW_FASTRTPS_USE_QOS_FROM_XML", "0", condition=large_data),
    ]


def vltseg_node_action(setup: NodeSetup) -> Node:
    """The ``vltseg_node`` process as ``setup`` describes it: its namespace, ``params_file``
    with the ``parameters`` over it, remappings and log level; output on the screen."""
    return Node(
        package="vltseg_ros",
        executable="vltseg_node",
        name="vltseg_node",
        namespace=setup.namespace,
        parameters=[setup.params_file, setup.parameters],
        remappings=list(setup.remappings),
        ros_arguments=["--log-level", setup.log_level],
        output="screen",
    )


def _default(argument: LaunchArgument) -> str | PathJoinSubstitution | None:
    if argument.in_share and argument.default is not None:
        return PathJoinSubstitution([FindPackageShare(PACKAGE), *argument.default.split("/")])
    return argument.default
