"""Parameters on rclpy: declared from the settings table with descriptions, ranges and choices;
rejected overrides and invalid values reported together, naming the parameters."""

from __future__ import annotations

import pytest
from rclpy.node import Node

from test.ros.node.in_process import parameters
from vltseg_ros.config.options import option_specs
from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.node.parameters import declare_parameters, read_settings
from vltseg_ros.ros.node.settings import NodeSettings, parameter_specs


def _node(context, overrides: dict | None = None, cli_args: list[str] | None = None) -> Node:
    return Node(
        "vltseg_node",
        context=context,
        parameter_overrides=parameters(overrides or {}),
        cli_args=cli_args,
    )


def test_every_parameter_is_declared_with_its_default_description_and_bounds(context) -> None:
    node = _node(context)
    assert declare_parameters(node) == []
    settings, cameras = read_settings(node, [])  # declares the per-camera parameters
    assert settings == NodeSettings() and [c.name for c in cameras] == ["camera"]
    builtin = {"use_sim_time", "start_type_description_service"}  # every rclpy node has them
    declared = {
        name: node.get_parameter(name).value
        for name in node.list_parameters([], 0).names
        if name not in builtin
    }
    specs = {spec.name: spec for spec in parameter_specs()}
    defaults = {name: spec.default for name, spec in specs.items()}
    assert declared == {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    for name, spec in specs.items():
        descriptor = node.describe_parameter(name)
        assert descriptor.description == spec.description
        if spec.choices is not None:
            assert descriptor.additional_constraints == ", ".join(map(str, spec.choices))
    batch = node.describe_parameter("batch_size").integer_range[0]
    assert (batch.from_value, batch.to_value) == (1, 256)
    threshold = node.describe_parameter("confidence_threshold").floating_point_range[0]
    assert (threshold.from_value, threshold.to_value) == (0.0, 1.0)
    node.destroy_node()


def test_rejected_overrides_and_invalid_values_are_reported_together(context) -> None:
    overrides = {
        "confidence_threshold": 1.5,  # out of the declared range: rejected at declaration
        "batch_size": "four",  # wrong type: rejected at declaration
        "upsample": "bicubic",
        "inference.mode": "tiles",
    }
    node = _node(context, overrides)
    errors = declare_parameters(node)
    assert [e.split(":")[0] for e in errors] == ["batch_size", "confidence_threshold"]
    with pytest.raises(ConfigError) as caught:
        read_settings(node, errors)
    message = str(caught.value)
    assert message.startswith("invalid parameters: ")
    for name in ("confidence_threshold", "batch_size", "upsample: 'bicubic'", "inference.mode"):
        assert name in message
    node.destroy_node()


def test_cameras_their_topics_and_sections(context, tmp_path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"read at activate, not here")
    node = _node(
        context,
        {
            "cameras": ["front", "rear"],
            "front": {"transport": "compressed", "camera_info_topic": ""},
            "rear": {"image_topic": "/rear/image"},
            "checkpoint": str(tmp_path / "m.onnx"),
            "onnxruntime": {"providers": "trt, cpu", "cache_dir": "~/trt"},
            "inference": {"crop_size": [256, 256], "stride": [200, 200]},
            "qos": {"input": {"reliability": "reliable", "depth": 3}},
        },
    )
    settings, (front, rear) = read_settings(node, declare_parameters(node))
    assert front.settings.subscribed_topic == "front/image_raw/compressed"
    assert front.settings.camera_info_topic == "" and rear.settings.image_topic == "/rear/image"
    assert rear.settings.camera_info_topic == "rear/camera_info"  # its default
    engine = settings.segmenter
    assert engine.resolved_backend == "onnxruntime"
    assert engine.engine_options().provider_names == (
        "TensorrtExecutionProvider",
        "CPUExecutionProvider",
    )
    assert (engine.inference.crop_size, engine.inference.stride) == ((256, 256), (200, 200))
    assert (settings.qos.input.reliability, settings.qos.input.depth) == ("reliable", 3)
    assert settings.qos.output.reliability == "reliable"
    node.destroy_node()


@pytest.mark.parametrize(
    ("cli_args", "overrides", "message"),
    [
        (["-p", "cameras:=[]"], {}, "cameras: has no value (an empty list"),
        ([], {"camera.image_topic": "bad topic!"}, "camera.image_topic: 'bad topic!' is not a"),
        ([], {"camera.camera_info_topic": "/a//b"}, "repeated '/'"),
        ([], {"precision": "fp16"}, "fp16 runs only on CUDA"),
        ([], {"model": "nosuch"}, "model: unknown model 'nosuch'"),
    ],
)
def test_configure_time_checks(context, cli_args, overrides, message) -> None:
    node = _node(context, overrides, ["--ros-args", *cli_args] if cli_args else None)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        read_settings(node, declare_parameters(node))
    node.destroy_node()


def test_parameters_are_the_settings_table() -> None:
    """One source: every parameter is an option of the table, none is made elsewhere."""
    names = [spec.name for spec in option_specs(NodeSettings)]
    assert len(names) == len(set(names))
    assert {"model", "batch_size", "pytorch.compile", "onnxruntime.cache_dir"} <= set(names)
    assert {"inference.crop_size", "qos.output.depth", "confidence_encoding"} <= set(names)
    assert all(spec.description for spec in parameter_specs())
