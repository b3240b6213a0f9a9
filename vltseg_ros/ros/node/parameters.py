"""The node's parameters on rclpy: declared from the table of :mod:`vltseg_ros.ros.node.settings`
(descriptions, ranges, choices), read and validated into :class:`NodeSettings`.

Declaring never fails: a value the declaration rejects (wrong type, out of range) is kept as an
error, the default is declared instead, and *configure* fails with every error, naming the
parameters, instead of the node dying.
"""

from __future__ import annotations

import re
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
    InvalidTopicNameException,
    ParameterAlreadyDeclaredException,
    ParameterUninitializedException,
)
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.validate_full_topic_name import validate_full_topic_name

from vltseg_ros.config.options import OptionSpec, build, option_specs
from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.node.names import CAMERA_NAME
from vltseg_ros.ros.node.settings import Camera, CameraSettings, NodeSettings, camera_specs


def declare_parameters(node: Node) -> list[str]:
    """Declare every global parameter; return the errors of rejected overrides (not raised)."""
    return [error for spec in option_specs(NodeSettings) if (error := declare(node, spec))]


def read_settings(node: Node, declare_errors: list[str]) -> tuple[NodeSettings, list[Camera]]:
    """Read and validate every parameter (declaring the per-camera ones): the settings and
    the cameras, checked as far as possible without loading the model
    (:meth:`SegmenterSettings.check`, topic names).

    Raises:
        ConfigError: listing every invalid parameter.
    """
    errors = list(declare_errors)
    values = _values(node, option_specs(NodeSettings), errors)
    settings = build(NodeSettings, values, errors, what="parameters")
    cameras = _cameras(node, settings.cameras, errors)
    try:
        settings.segmenter.check()
    except ConfigError as exc:
        errors.append(str(exc))
    if errors:
        raise ConfigError("invalid parameters: " + "; ".join(errors))
    return settings, cameras


def declare(node: Node, spec: OptionSpec) -> str | None:
    """Declare one parameter; the error of a rejected override, or None."""
    constraints = ", ".join(map(str, spec.choices)) if spec.choices is not None else ""
    descriptor = ParameterDescriptor(
        name=spec.name, description=spec.description, additional_constraints=constraints
    )
    if spec.range is not None and spec.kind is int:
        low, high = spec.range
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
    elif spec.range is not None:
        low, high = spec.range
        descriptor.floating_point_range = [
            FloatingPointRange(from_value=low, to_value=high, step=0.0)
        ]
    default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
    try:
        node.declare_parameter(spec.name, default, descriptor)
    except ParameterAlreadyDeclaredException:
        return None
    except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
        node.declare_parameter(spec.name, default, descriptor, ignore_override=True)
        return f"{spec.name}: {exc}"
    return None


def topic_error(node: Node, parameter: str, topic: str) -> str | None:
    """Why ``topic`` (the value of ``parameter``) is not a valid topic name, or None."""
    try:
        validate_full_topic_name(expand_topic_name(topic, node.get_name(), node.get_namespace()))
    except (ValueError, InvalidTopicNameException) as exc:
        reason = str(exc).split(", at ")[0].splitlines()[0].rstrip(":")
        reason = re.sub(r"^(topic name .* is invalid|Invalid topic name): ", "", reason)
        return f"{parameter}: {topic!r} is not a valid topic name ({reason})"
    return None


def _values(node: Node, specs: list[OptionSpec], errors: list[str]) -> dict[str, Any]:
    values = {}
    for spec in specs:
        try:
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:  # e.g. `-p cameras:=[]`: no element type
            errors.append(
                f"{spec.name}: has no value (an empty list [] has no element type in ROS 2 "
                "parameters; give at least one element)"
            )
    return values


def _cameras(node: Node, names: tuple[str, ...], errors: list[str]) -> list[Camera]:
    if not names:
        errors.append("cameras: at least one camera name is required")
    if len(set(names)) != len(names):
        errors.append(f"cameras: duplicate names in {list(names)}")
    cameras = []
    for name in names:
        if not CAMERA_NAME.fullmatch(name):
            errors.append(f"cameras: {name!r} is not a valid name (letters, digits, _)")
            continue
        specs = camera_specs(name)
        errors.extend(error for spec in specs if (error := declare(node, spec)))
        values = _values(node, specs, errors)
        try:
            camera = build(CameraSettings, values, prefix=f"{name}.", what=f"camera {name}")
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        topics = {
            "image_topic": camera.subscribed_topic,
            "camera_info_topic": camera.camera_info_topic,
        }
        for key, topic in topics.items():
            if key == "image_topic" and not camera.image_topic:
                errors.append(f"{name}.image_topic: must not be empty")
            elif topic and (error := topic_error(node, f"{name}.{key}", topic)):
                errors.append(error)
        cameras.append(Camera(name, camera))
    return cameras
