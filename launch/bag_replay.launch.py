"""Replay a rosbag2 through vltseg_node and record / score its outputs.

    ros2 launch vltseg_ros bag_replay.launch.py bag:=drive.mcap out:=eval lockstep:=true \\
        checkpoint:=/path/to/weights.safetensors device:=cuda rviz:=true

Processes: ``vltseg_node`` (camera ``camera`` remapped to the bag's image topic, found as the
player finds it, and to the CameraInfo topic beside it), ``vltseg_bag_player`` (publishes the
bag and ``/clock``), ``vltseg_replay_recorder`` (records ``/camera/segmentation/*``, writes the
report into ``out``; the launch shuts down when it, or vltseg_node, exits), and RViz with
``config/vltseg.rviz`` when ``rviz:=true``.

vltseg_node brings itself to *active* (its ``autostart``); the player waits for that (asking
the node's ``get_state`` service again every few seconds: one request can be lost while
discovery is under way on a loaded machine, and a launch_ros ``ChangeState`` would then wait
forever) and for the node's subscription before it publishes, so no frame is published before
the model is loaded. When the node does not become active (e.g. a missing checkpoint), the
player exits with an error and the launch shuts down.
"""

from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.events.process import ProcessExited
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from vltseg_ros.ros.launch.actions import (
    declare_arguments,
    large_data_actions,
    vltseg_node_action,
)
from vltseg_ros.ros.launch.setups import NODE_ARGUMENTS, bag_replay


def _launch_processes(context: LaunchContext) -> list:
    setup = bag_replay(context.launch_configurations)
    node = vltseg_node_action(setup.node)
    player = Node(
        package="vltseg_ros",
        executable="vltseg_bag_player",
        name="vltseg_bag_player",
        parameters=[setup.player],
        output="screen",
    )
    recorder = Node(
        package="vltseg_ros",
        executable="vltseg_replay_recorder",
        name="vltseg_replay_recorder",
        parameters=[setup.recorder],
        output="screen",
    )
    actions = [
        _shutdown_on_exit(recorder, "the replay recorder finished"),
        _shutdown_on_exit(node, "vltseg_node exited"),
        _shutdown_on_exit(player, "the bag player failed", failures_only=True),
        node,
        recorder,
        player,
    ]
    if setup.rviz:
        share = FindPackageShare("vltseg_ros")
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "config", "vltseg.rviz"])],
                parameters=[{"use_sim_time": setup.node.parameters["use_sim_time"]}],
                remappings=list(setup.rviz_remappings),
            )
        )
    return actions


def _shutdown_on_exit(
    process: Node, reason: str, failures_only: bool = False
) -> RegisterEventHandler:
    """Stop the launch when ``process`` exits (with ``failures_only``: with a non-zero code),
    unless it is already stopping (a second Shutdown makes launch_ros report an error)."""

    def on_exit(event: ProcessExited, context: LaunchContext) -> list[EmitEvent]:
        if context.is_shutdown or (failures_only and event.returncode == 0):
            return []
        return [EmitEvent(event=Shutdown(reason=f"{reason} (exit code {event.returncode})"))]

    return RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "bag", description="Input rosbag2: a bag directory, or an .mcap / .db3 file"
            ),
            DeclareLaunchArgument(
                "out",
                default_value="replay_eval",
                description="Output folder of the recorder: report, segmented (output bag)",
            ),
            DeclareLaunchArgument(
                "rate",
                default_value="1.0",
                description="Playback speed factor (2.0 = twice as fast); ignored with lockstep",
            ),
            DeclareLaunchArgument(
                "lockstep",
                default_value="false",
                description="true: publish the next frame only after the node's mask of the "
                "previous one (every frame segmented, as fast as the node goes); false: the "
                "recorded timing x rate (frames the node cannot keep up with are dropped)",
            ),
            DeclareLaunchArgument(
                "image_topic",
                default_value="",
                description="The bag's camera topic (Image or CompressedImage); empty = its "
                "only color image topic",
            ),
            *declare_arguments(NODE_ARGUMENTS),
            DeclareLaunchArgument(
                "rviz",
                default_value="false",
                description="Show image, overlay, mask and confidence in RViz",
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="true",
                description="Node and RViz on the bag's time (/clock from the player); false: "
                "wall clock, and the node's max_age is disabled",
            ),
            *large_data_actions(),
            OpaqueFunction(function=_launch_processes),
        ]
    )
