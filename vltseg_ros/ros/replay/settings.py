"""The parameters of ``vltseg_replay_recorder`` and ``vltseg_bag_player``, as tables.

One frozen dataclass per executable, each field an :func:`~vltseg_ros.config.options.option`
(default, description, range): the nodes declare them as rclpy parameters with descriptors and
read them back validated (:func:`vltseg_ros.ros.node.parameters.declare_table` /
:func:`~vltseg_ros.ros.node.parameters.read_table`), as vltseg_node does its
:class:`~vltseg_ros.ros.node.settings.NodeSettings`. No rclpy import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vltseg_ros.config.options import option
from vltseg_ros.inference.outputs import output_topic

NON_NEGATIVE = (0.0, math.inf)
"""Range of a duration or a rate: any number >= 0 (a negative one is refused)."""


@dataclass(frozen=True)
class RecorderSettings:
    """The parameters of ``vltseg_replay_recorder``."""

    bag: str = option("", "Input rosbag2 (directory, .mcap or .db3): labels and input images.")
    out: str = option("replay_eval", "Output folder: report.md / .json, charts, output bag.")
    camera: str = option("camera", "Camera whose <camera>/segmentation/* outputs are recorded.")
    label_topic: str = option("", "The bag's label topic; empty = detected.")
    idle_timeout: float = option(
        10.0,
        "Finish when nothing happened for this long while the node was idle.",
        range=NON_NEGATIVE,
        unit="s",
    )
    start_timeout: float = option(
        600.0,
        "Finish when no output arrived this long after start (model loading).",
        range=NON_NEGATIVE,
        unit="s",
    )
    write_bag: bool = option(True, "Write an output bag: the input topics plus the outputs.")
    output_bag: str = option("", "Output bag path; empty = <out>/segmented.")
    save_overlays: bool = option(
        False,
        "Also write every overlay as <out>/overlays/<frame name>.png: the input frame's name "
        "that make-bag stored in the bag, else its header stamp in ns.",
    )


@dataclass(frozen=True)
class PlayerSettings:
    """The parameters of ``vltseg_bag_player``."""

    bag: str = option("", "The rosbag2 to publish (directory, .mcap or .db3).")
    rate: float = option(
        1.0,
        "Timed playback speed factor (2.0 = twice as fast; 0 = as fast as possible).",
        range=NON_NEGATIVE,
    )
    lockstep: bool = option(False, "Publish each image only after the mask of the previous one.")
    image_topic: str = option("", "The bag's camera topic; empty = its only image topic.")
    mask_topic: str = option(
        output_topic("camera", "mask"), "Where the node publishes masks (lockstep only)."
    )
    lockstep_timeout: float = option(
        600.0, "Wait this long for each mask before moving on.", range=NON_NEGATIVE, unit="s"
    )
    subscriber_timeout: float = option(
        60.0,
        "Wait this long for the node's image subscription (and mask publisher) before playing.",
        range=NON_NEGATIVE,
        unit="s",
    )
    wait_for_node: str = option(
        "", "A lifecycle node that must be active before playing (/vltseg_node); empty = none."
    )
    wait_for_recorder: str = option(
        "", "A recorder's readiness topic to wait for before playing; empty = none."
    )
    node_timeout: float = option(
        900.0,
        "Wait this long for wait_for_node and for wait_for_recorder, each.",
        range=NON_NEGATIVE,
        unit="s",
    )
