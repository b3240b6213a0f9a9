"""The node's parameters on rclpy: declared from the table of :mod:`vltseg_ros.ros.node.settings`
(descriptions, ranges, choices), read and validated into :class:`NodeSettings`.

Declaring never fails: a value the declaration rejects (wrong type, out of range) is kept as an
error, the default is declared instead, and *configure* fails with every error, naming the
parameters, instead of the node dying.

:func:`declare_table` and :func:`read_table` do the same for any settings table: the replay
player's and recorder's (:mod:`vltseg_ros.ros.replay.settings`).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

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

T = TypeVar("T")


def declare_parameters(node: Node) -> list[str]:
    """Declare every global parameter; return the errors of rejected overrides (not raised)."""
    return declare_table(node, NodeSettings)


def declare_table(node: Node, table: type) -> list[str]:
    """Declare every option of the settings dataclass ``table`` as a parameter (description,
    range, choices); return the errors of rejected overrides (not raised)."""
    return [error for spec in option_specs(table) if (error := declare(node, spec))]


def read_table(node: Node, table: type[T], declare_errors: list[str]) -> T:
    """The parameters of ``table`` (declared by :func:`declare_table`) as a validated instance.

    Raises:
        ConfigError: ``invalid parameters: ...``, listing ``declare_errors`` and every invalid
            value.
    """
    errors = list(declare_errors)
    values = _values(node, option_specs(table), errors)
    return build(table, values, errors, what="parameters")


def read_settings(node: Node, declare_errors: list[str]) -> tuple[NodeSettings, list[Camera]]:
    """Read and validate every parameter (declaring the per-camera ones): the settings and
    the cameras, checked as far as possible without loading the model
    (:meth:`SegmenterSettings.check`, topic names).

    Raises:
        ConfigError: listing every invalid parameter.
    """
    settings = read_table(node, NodeSettings, declare_errors)
    errors: list[str] = []  # read_table raised for any earlier one
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
    elif spec.range is not None and not spec.nan_allowed:  # rclpy's range refuses NaN
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
