"""Every parameter of vltseg_node, as one table: the dataclasses below.

The node declares and reads its parameters from them (:mod:`vltseg_ros.ros.node.parameters`);
``config/vltseg.yaml`` and the parameter table of ``docs/node.md`` are generated from them
(``python -m vltseg_ros.ros.node.settings yaml|markdown``; a test keeps both equal). The model,
engine and inference parameters are the core's :class:`SegmenterSettings`, the output ones its
:class:`OutputSettings`: the command-line flags of the same names come from the same classes.
No rclpy import.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, replace
from typing import Any

import yaml

from vltseg_ros.config.options import OptionSpec, option, option_specs, section
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.io.image_files import MAX_IMAGE_PIXELS
from vltseg_ros.ros.node.names import TRANSPORTS

RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class EndpointQos:
    """QoS of one side of the node."""

    reliability: str = option("best_effort", "reliability.", choices=RELIABILITIES)
    depth: int = option(1, "history depth.", range=(1, 100))


@dataclass(frozen=True)
class QosSettings:
    """QoS of the camera subscriptions and of the output publishers."""

    input: EndpointQos = option(
        EndpointQos(), "Camera subscriptions (REP 2003: sensor data is best effort), QoS"
    )
    output: EndpointQos = option(EndpointQos("reliable"), "Output publishers, QoS")


@dataclass(frozen=True)
class CameraSettings:
    """The parameters of camera ``<name>``: ``<name>.image_topic`` ... (``{camera}`` in a
    default is the camera's name)."""

    image_topic: str = option(
        "{camera}/image_raw",
        "Image topic (sensor_msgs/Image); with transport compressed the base topic.",
    )
    camera_info_topic: str = option(
        "{camera}/camera_info", "CameraInfo topic; empty = no camera_info input or output."
    )
    transport: str = option(
        "raw",
        "raw (sensor_msgs/Image) or compressed (CompressedImage on <image_topic>/compressed, "
        "the image_transport convention).",
        choices=TRANSPORTS,
    )

    @property
    def subscribed_topic(self) -> str:
        """The image topic actually subscribed."""
        suffix = "/compressed" if self.transport == "compressed" else ""
        return f"{self.image_topic}{suffix}"


@dataclass(frozen=True)
class Camera:
    """A configured camera: its name and settings."""

    name: str
    settings: CameraSettings


@dataclass(frozen=True)
class NodeSettings:
    """All global parameters of vltseg_node (the per-camera ones are :class:`CameraSettings`)."""

    autostart: bool = option(True, "Configure and activate the node at start-up (plain ros2 run).")
    segmenter: SegmenterSettings = section(SegmenterSettings())
    outputs: OutputSettings = section(OutputSettings(), live=True)
    max_age: float = option(
        0.5,
        "Frames older than this (header stamp to inference start) are dropped as stale; 0 "
        "disables.",
        range=(0.0, 3600.0),
        unit="s",
    )
    batch_window: float = option(
        0.01,
        "Once one camera's frame waits, wait up to this long for the other cameras' frames so "
        "they run as one batch; 0 disables.",
        range=(0.0, 1.0),
        unit="s",
    )
    warmup: bool = option(True, "Run one inference on a blank frame during activation.")
    max_image_pixels: int = option(
        MAX_IMAGE_PIXELS,
        "Largest input frame (height x width); larger ones are refused, compressed ones from "
        "their header before decoding (decompression bombs). Default: 8K UHD fits.",
        range=(1, 1 << 31),
    )
    cameras: tuple[str, ...] = option(
        ("camera",),
        "Camera names; each has the parameters <name>.image_topic, <name>.camera_info_topic "
        "and <name>.transport.",
    )
    qos: QosSettings = option(QosSettings(), "")
    diagnostics_period: float = option(
        1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0), unit="s", live=True
    )
    shift_window: float = option(
        10.0,
        "Domain-shift monitor: seconds of frames (by header stamp) whose mean confidence and "
        "anomaly fraction are compared with the checkpoint's calibration set.",
        range=(0.1, 3600.0),
        unit="s",
    )
    shift_threshold: float = option(
        3.0,
        "Domain-shift monitor: /diagnostics turns WARN when the window's shift score (standard "
        "deviations of the calibration set) reaches this.",
        range=(0.0, 1000.0),
    )


def camera_specs(name: str) -> list[OptionSpec]:
    """The parameters of camera ``name``, named ``<name>.<option>``, defaults filled in."""
    return [
        replace(spec, name=f"{name}.{spec.name}", default=spec.default.format(camera=name))
        if isinstance(spec.default, str)
        else replace(spec, name=f"{name}.{spec.name}")
        for spec in option_specs(CameraSettings)
    ]


def parameter_specs() -> list[OptionSpec]:
    """Every parameter of a node with the default camera, in documentation order."""
    return [*option_specs(NodeSettings), *camera_specs("camera")]


def parameters_yaml() -> str:
    """``config/vltseg.yaml``: every parameter with its default, each under its description."""
    lines = [
        "# vltseg_node parameters with their defaults: generated from",
        "# vltseg_ros/ros/node/settings.py (python -m vltseg_ros.ros.node.settings yaml >",
        "# config/vltseg.yaml). `/**/vltseg_node` matches the node in any namespace. Per camera",
        "# <name> of `cameras`: <name>.image_topic, <name>.camera_info_topic, <name>.transport.",
        "# [live]: `ros2 param set` on a running node applies it from the next frame; every",
        "# other parameter takes effect at configure (refused while configured or active).",
        "/**/vltseg_node:",
        "  ros__parameters:",
    ]
    opened: list[str] = []
    for spec in parameter_specs():
        *path, leaf = spec.name.split(".")
        common = 0
        while common < min(len(path), len(opened)) and path[common] == opened[common]:
            common += 1
        for depth in range(common, len(path)):
            lines.append(f"{'  ' * (depth + 2)}{path[depth]}:")
        opened = path
        indent = "  " * (len(path) + 2)
        text = f"[live] {spec.explained}" if spec.live else spec.explained
        wrapped = textwrap.wrap(text, 99 - len(indent) - 2)
        lines += [f"{indent}# {line}" for line in wrapped]
        lines.append(f"{indent}{leaf}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def parameters_markdown() -> str:
    """The parameter table of ``docs/node.md``."""
    rows = ["| parameter | default | set | meaning |", "|---|---|---|---|"]
    for spec in parameter_specs():
        name = f"<cam>.{spec.name[7:]}" if spec.name.startswith("camera.") else spec.name
        default = f"`{_yaml_value(spec.default)}`"
        when = "live" if spec.live else "configure"
        rows.append(f"| `{name}` | {default} | {when} | {spec.explained.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


def usage() -> str:
    """What ``vltseg_node --help`` prints: usage, every parameter (default, live or not, first
    sentence of its description), and where the rest is documented."""
    lines = [
        "usage: ros2 run vltseg_ros vltseg_node [--ros-args -p NAME:=VALUE ... "
        "--params-file FILE]",
        "",
        "vltseg_node: semantic segmentation (VLTSeg) of camera images, a ROS 2 lifecycle node.",
        "Subscribes <cam>/image_raw (or <cam>/image_raw/compressed) per camera of `cameras`;",
        "publishes <cam>/segmentation/{mask,confidence,overlay,anomaly,info,camera_info,",
        "label_info}, /classes and /diagnostics.",
        "",
        "parameters ([live]: applied from the next frame when set on a running node; the others",
        "take effect at configure):",
    ]
    for spec in parameter_specs():
        name = f"<cam>.{spec.name[7:]}" if spec.name.startswith("camera.") else spec.name
        first = spec.description.split(". ")[0].rstrip(".")
        live = " [live]" if spec.live else ""
        lines.append(f"  {name} = {_yaml_value(spec.default)}{live}")
        lines += textwrap.wrap(first, 95, initial_indent="      ", subsequent_indent="      ")
    lines += [
        "",
        "Every parameter, the topics and the lifecycle: docs/node.md; all defaults as a",
        "--params-file: config/vltseg.yaml (share/vltseg_ros/config/vltseg.yaml when installed).",
    ]
    return "\n".join(lines)


def _yaml_value(value: Any) -> str:
    value = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text.removesuffix("\n...").removesuffix("...").strip() or "''"


if __name__ == "__main__":
    formats = {"yaml": parameters_yaml, "markdown": parameters_markdown}
    if len(sys.argv) != 2 or sys.argv[1] not in formats:
        sys.exit("usage: python -m vltseg_ros.ros.node.settings yaml|markdown")
    sys.stdout.write(formats[sys.argv[1]]())
