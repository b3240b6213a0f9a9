"""The node's parameters: declared with descriptions and ranges, read into typed settings.

Every parameter and its default is listed in ``config/vltseg.yaml``. Values are declared when
the node starts and read when it is configured; a value the declaration rejects (wrong type,
out of range) or that fails validation makes *configure* fail with a message naming the
parameter, instead of killing the node.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

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
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.validate_full_topic_name import validate_full_topic_name

from vltseg_ros.config import InferenceConfig, load_model_config
from vltseg_ros.engines.base import BACKENDS, Backend, resolve_backend, resolve_device
from vltseg_ros.engines.providers import parse_providers
from vltseg_ros.errors import ConfigError, DeviceError
from vltseg_ros.files import require_file
from vltseg_ros.ros.parameter_specs import PARAMETER_SPECS, UNSET_PAIR, ParameterSpec


@dataclass(frozen=True)
class CameraSettings:
    """One camera: where its images come from and how they are transported."""

    name: str
    image_topic: str
    camera_info_topic: str
    transport: Literal["raw", "compressed"]

    @property
    def subscribed_topic(self) -> str:
        """The image topic actually subscribed (image_transport's ``/compressed`` suffix)."""
        return (
            f"{self.image_topic}/compressed"
            if self.transport == "compressed"
            else self.image_topic
        )


@dataclass(frozen=True)
class NodeSettings:
    """Validated node settings (see ``config/vltseg.yaml`` for meanings)."""

    model: str
    checkpoint: str
    backend: Backend
    device: str
    precision: str
    batch_size: int
    torch_channels_last: bool
    torch_compile: bool
    onnx_providers: tuple[str, ...]
    onnx_cache_dir: str
    onnx_threads: int
    inference_overrides: dict[str, Any]
    confidence_threshold: float
    output_resolution: Literal["input", "model"]
    upsample: Literal["scores", "labels"]
    confidence_encoding: Literal["32FC1", "mono8"]
    overlay_alpha: float
    max_age: float
    batch_window: float
    warmup: bool
    cameras: tuple[CameraSettings, ...]
    input_qos: QoSProfile
    output_qos: QoSProfile
    diagnostics_period: float
    max_image_pixels: int

    def inference_for(self, base: InferenceConfig) -> InferenceConfig:
        """``base`` (the model config's) with the non-default inference parameters applied."""
        config = dataclasses.replace(base, **self.inference_overrides)
        config.validate()
        return config

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Segmenter.load`` for the backend's own parameters."""
        if self.backend == "pytorch":
            return {"channels_last": self.torch_channels_last, "compile": self.torch_compile}
        return {
            "providers": self.onnx_providers or None,
            "cache_dir": self.onnx_cache_dir or None,
            "threads": self.onnx_threads or None,
        }


def declare_parameters(node: Node) -> list[str]:
    """Declare every global parameter; return the errors of rejected overrides (not raised)."""
    return [e for spec in PARAMETER_SPECS if (e := _declare(node, spec))]


def read_settings(node: Node, declare_errors: list[str]) -> NodeSettings:
    """Read and validate all parameters (declaring the per-camera ones).

    Raises:
        ConfigError: listing every invalid parameter.
    """
    errors = list(declare_errors)
    get = {spec.name: _value(node, spec.name, errors) for spec in PARAMETER_SPECS}
    if None in get.values():
        raise ConfigError("invalid parameters: " + "; ".join(errors))
    cameras = _read_cameras(node, list(get["cameras"] or []), errors)
    choices = {
        "inference.mode": ("", "slide", "whole"),
        "output_resolution": ("input", "model"),
        "upsample": ("scores", "labels"),
        "confidence_encoding": ("32FC1", "mono8"),
        "qos.input.reliability": ("best_effort", "reliable"),
        "qos.output.reliability": ("best_effort", "reliable"),
        "precision": ("fp32", "fp16", "bf16"),
        "backend": BACKENDS,
    }
    for name, allowed in choices.items():
        if get[name] not in allowed:
            errors.append(f"{name}: {get[name]!r} is not one of {', '.join(map(repr, allowed))}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", get["device"]):
        errors.append(f"device: {get['device']!r} is not cpu, cuda or cuda:N")
    elif get["precision"] in ("fp16", "bf16"):
        _device_checks(get, errors)
    overrides = _inference_overrides(get, errors)
    providers = _engine_checks(get, errors)
    if errors:
        raise ConfigError("invalid parameters: " + "; ".join(errors))
    return NodeSettings(
        model=get["model"],
        checkpoint=get["checkpoint"],
        backend=get["backend"],
        device=get["device"],
        precision=get["precision"],
        batch_size=get["batch_size"],
        torch_channels_last=get["pytorch.channels_last"],
        torch_compile=get["pytorch.compile"],
        onnx_providers=providers,
        onnx_cache_dir=get["onnxruntime.cache_dir"],
        onnx_threads=get["onnxruntime.threads"],
        inference_overrides=overrides,
        confidence_threshold=get["confidence_threshold"],
        output_resolution=get["output_resolution"],
        upsample=get["upsample"],
        confidence_encoding=get["confidence_encoding"],
        overlay_alpha=get["overlay_alpha"],
        max_age=get["max_age"],
        batch_window=get["batch_window"],
        warmup=get["warmup"],
        cameras=tuple(cameras),
        input_qos=_qos(get["qos.input.reliability"], get["qos.input.depth"]),
        output_qos=_qos(get["qos.output.reliability"], get["qos.output.depth"]),
        diagnostics_period=get["diagnostics_period"],
        max_image_pixels=get["max_image_pixels"],
    )


def _value(node: Node, name: str, errors: list[str]) -> Any:
    """A parameter's value; None (and an error) when it was set to something typeless."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        # e.g. `-p cameras:=[]`: an empty list has no element type, so ROS leaves it unset
        errors.append(
            f"{name}: has no value (an empty list [] has no element type in ROS 2 parameters; "
            "give at least one element)"
        )
        return None


def _device_checks(get: dict[str, Any], errors: list[str]) -> None:
    """fp16 / bf16 need a CUDA device that has them, and bf16 the pytorch backend."""
    if get["backend"] == "onnxruntime" and get["precision"] == "bf16":
        errors.append("precision: bf16 is not available with backend onnxruntime; use fp16")
        return
    try:
        resolve_device(get["device"], get["precision"])
    except DeviceError as exc:
        errors.append(f"precision: {get['precision']} on device {get['device']!r}: {exc}")


def topic_error(node: Node, parameter: str, topic: str) -> str | None:
    """Why ``topic`` (the value of ``parameter``) is not a valid topic name, or None."""
    try:
        validate_full_topic_name(expand_topic_name(topic, node.get_name(), node.get_namespace()))
    except (ValueError, InvalidTopicNameException) as exc:
        reason = str(exc).split(", at ")[0].splitlines()[0].rstrip(":")
        reason = re.sub(r"^(topic name .* is invalid|Invalid topic name): ", "", reason)
        return f"{parameter}: {topic!r} is not a valid topic name ({reason})"
    return None


def _declare(node: Node, spec: ParameterSpec) -> str | None:
    descriptor = ParameterDescriptor(
        name=spec.name, description=spec.description, additional_constraints=spec.constraints
    )
    if spec.int_range:
        descriptor.integer_range = [
            IntegerRange(from_value=spec.int_range[0], to_value=spec.int_range[1], step=1)
        ]
    if spec.float_range:
        descriptor.floating_point_range = [
            FloatingPointRange(
                from_value=spec.float_range[0], to_value=spec.float_range[1], step=0.0
            )
        ]
    try:
        node.declare_parameter(spec.name, spec.default, descriptor)
    except ParameterAlreadyDeclaredException:
        return None
    except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
        # The override from the command line / YAML was rejected; keep the default declared
        # so the node runs, and make configure fail with the reason.
        node.declare_parameter(spec.name, spec.default, descriptor, ignore_override=True)
        return f"{spec.name}: {exc}"
    return None


def _read_cameras(node: Node, names: list[str], errors: list[str]) -> list[CameraSettings]:
    if not names:
        errors.append("cameras: at least one camera name is required")
    if len(set(names)) != len(names):
        errors.append(f"cameras: duplicate names in {names}")
    cameras = []
    for name in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            errors.append(f"cameras: {name!r} is not a valid name (letters, digits, _)")
            continue
        specs = (
            ParameterSpec(
                f"{name}.image_topic", f"{name}/image_raw", f"Image topic of camera {name}."
            ),
            ParameterSpec(
                f"{name}.camera_info_topic",
                f"{name}/camera_info",
                f"CameraInfo topic of camera {name}; empty = none.",
            ),
            ParameterSpec(
                f"{name}.transport",
                "raw",
                f"Image transport of camera {name}: raw "
                "(sensor_msgs/Image) or compressed (CompressedImage on <image_topic>/compressed)",
                "raw, compressed",
            ),
        )
        errors.extend(e for spec in specs if (e := _declare(node, spec)))
        image, info, transport = (node.get_parameter(s.name).value for s in specs)
        if transport not in ("raw", "compressed"):
            errors.append(f"{name}.transport: {transport!r} is not 'raw' or 'compressed'")
        if not image:
            errors.append(f"{name}.image_topic: must not be empty")
        camera = CameraSettings(name, image, info, transport)
        topics = {f"{name}.image_topic": camera.subscribed_topic} if image else {}
        if info:
            topics[f"{name}.camera_info_topic"] = info
        errors.extend(e for key, topic in topics.items() if (e := topic_error(node, key, topic)))
        cameras.append(camera)
    return cameras


def _inference_overrides(get: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if get["inference.mode"]:
        overrides["mode"] = get["inference.mode"]
    for key in ("crop_size", "stride", "test_scale", "whole_size"):
        value = list(get[f"inference.{key}"])
        if value == UNSET_PAIR:
            continue
        if len(value) != 2 or min(value) <= 0:
            errors.append(f"inference.{key}: {value} must be two positive integers or [0, 0]")
        else:
            overrides[key] = (int(value[0]), int(value[1]))
    return overrides


def _engine_checks(get: dict[str, Any], errors: list[str]) -> tuple[str, ...]:
    """The checkpoint file and the model config (read, not built); backend against checkpoint
    and model; the parsed onnxruntime.providers."""
    if get["checkpoint"]:
        try:
            require_file(get["checkpoint"], "file", ConfigError)
        except ConfigError as exc:
            errors.append(f"checkpoint: {exc}")
    if get["model"]:
        try:
            load_model_config(get["model"])
        except ConfigError as exc:
            errors.append(f"model: {exc}")
    if get["backend"] in BACKENDS:
        try:
            resolve_backend(get["backend"], get["checkpoint"] or None)
        except ConfigError as exc:
            errors.append(f"backend: {exc}")
        if get["backend"] == "onnxruntime" and get["model"]:
            errors.append(
                "model: must be empty with backend onnxruntime (the .onnx checkpoint carries "
                "its architecture)"
            )
    try:
        return parse_providers(get["onnxruntime.providers"])
    except ConfigError as exc:
        errors.append(f"onnxruntime.providers: {exc}")
        return ()


def _qos(reliability: str, depth: int) -> QoSProfile:
    policy = (
        ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        reliability=policy,
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        durability=DurabilityPolicy.VOLATILE,
    )
