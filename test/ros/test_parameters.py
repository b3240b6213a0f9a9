"""config/vltseg.yaml lists exactly the node's parameters with their declared defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.node import Node
from rclpy.parameter import Parameter

from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.parameters import declare_parameters, read_settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "vltseg.yaml"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.fixture
def context():
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def _node(context, overrides: dict | None = None) -> Node:
    params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
    return Node("vltseg_node", context=context, parameter_overrides=params)


def test_yaml_lists_every_parameter_with_its_default(context) -> None:
    node = _node(context)
    assert declare_parameters(node) == []
    settings = read_settings(node, [])  # declares the per-camera parameters
    builtin = {"use_sim_time", "start_type_description_service"}  # every rclpy node has them
    names = node.list_parameters([], 0).names
    declared = {n: node.get_parameter(n).value for n in names if n not in builtin}
    in_yaml = _flatten(yaml.safe_load(CONFIG.read_text())["/**/vltseg_node"]["ros__parameters"])
    assert in_yaml == declared
    for name in declared:
        assert node.describe_parameter(name).description, f"{name} has no description"
    assert [c.name for c in settings.cameras] == ["camera"]
    assert settings.cameras[0].subscribed_topic == "camera/image_raw"
    node.destroy_node()


def test_ranges_are_declared(context) -> None:
    node = _node(context)
    declare_parameters(node)
    threshold = node.describe_parameter("confidence_threshold").floating_point_range[0]
    assert (threshold.from_value, threshold.to_value) == (0.0, 1.0)
    batch = node.describe_parameter("batch_size").integer_range[0]
    assert (batch.from_value, batch.to_value) == (1, 256)
    node.destroy_node()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"batch_size": "four"}, "batch_size"),
        ({"upsample": "bicubic"}, "upsample: 'bicubic' is not one of"),
        ({"inference.crop_size": [64]}, "inference.crop_size"),
        ({"cameras": ["1st"]}, "not a valid name"),
        ({"backend": "tensorrt"}, "backend: 'tensorrt' is not one of"),
        ({"checkpoint": "m.onnx"}, "backend: checkpoint 'm.onnx' is an ONNX model"),
        ({"backend": "onnxruntime"}, "backend: the onnxruntime backend runs an exported"),
        ({"onnxruntime.providers": "cuda,rocm"}, "onnxruntime.providers: unknown"),
        ({"onnxruntime.threads": -1}, "onnxruntime.threads"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_parameter(context, overrides, message):
    node = _node(context, overrides)
    errors = declare_parameters(node)
    with pytest.raises(ConfigError, match=message):
        read_settings(node, errors)
    node.destroy_node()


def test_compressed_camera_and_inference_overrides(context) -> None:
    node = _node(
        context,
        {
            "cameras": ["front"],
            "front.transport": "compressed",
            "inference.crop_size": [256, 256],
            "inference.stride": [200, 200],
        },
    )
    settings = read_settings(node, declare_parameters(node))
    assert settings.cameras[0].subscribed_topic == "front/image_raw/compressed"
    assert settings.inference_overrides == {"crop_size": (256, 256), "stride": (200, 200)}
    node.destroy_node()


def test_engine_options_follow_the_backend(context, tmp_path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"checked at activate, not here")
    onnx = {"checkpoint": str(tmp_path / "m.onnx"), "onnxruntime.providers": "trt, cpu"}
    node = _node(context, {**onnx, "backend": "onnxruntime", "onnxruntime.cache_dir": "/c"})
    settings = read_settings(node, declare_parameters(node))
    assert settings.engine_options() == {
        "providers": ("TensorrtExecutionProvider", "CPUExecutionProvider"),
        "cache_dir": "/c",
        "threads": None,
    }
    node.destroy_node()
    node = _node(context, {"onnxruntime.threads": 4, "pytorch.compile": True})
    settings = read_settings(node, declare_parameters(node))  # onnxruntime.* ignored
    assert settings.backend == "pytorch"
    assert settings.engine_options() == {"channels_last": False, "compile": True}
    node.destroy_node()
