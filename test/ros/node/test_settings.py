"""The parameter table is the one source: the shipped YAML and the documentation's table are
generated from it and kept equal; options are validated by their declared choices and ranges."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vltseg_ros.config.options import build, option_specs, values_of
from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.node.settings import (
    NodeSettings,
    parameter_specs,
    parameters_markdown,
    parameters_yaml,
)

REPO = Path(__file__).resolve().parents[3]
REGENERATE = "regenerate it: python -m vltseg_ros.ros.node.settings {} > ..."


def test_config_yaml_is_the_generated_table() -> None:
    assert (REPO / "config" / "vltseg.yaml").read_text() == parameters_yaml(), REGENERATE.format(
        "yaml"
    )
    loaded = yaml.safe_load(parameters_yaml())["/**/vltseg_node"]["ros__parameters"]
    flat: dict = {}

    def walk(tree: dict, prefix: str = "") -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    walk(loaded)
    specs = {spec.name: spec.default for spec in parameter_specs()}
    assert math.isnan(flat.pop("anomaly_threshold"))  # .nan: the anomaly method's default
    assert math.isnan(specs.pop("anomaly_threshold"))
    assert flat == {k: list(v) if isinstance(v, tuple) else v for k, v in specs.items()}


def test_docs_table_is_the_generated_table() -> None:
    text = (REPO / "docs" / "node.md").read_text()
    begin = text.index("<!-- begin parameters")
    table = text[text.index("\n", begin) + 1 : text.index("<!-- end parameters -->")]
    assert table == parameters_markdown(), REGENERATE.format("markdown")
    for spec in parameter_specs():
        assert f"`{spec.name.replace('camera.', '<cam>.')}`" in table


def test_build_checks_choices_ranges_types_and_names_every_problem() -> None:
    settings = build(NodeSettings, {"batch_size": 8, "pytorch.compile": True, "cameras": ["a"]})
    assert settings.segmenter.batch_size == 8 and settings.segmenter.pytorch.compile
    assert settings.cameras == ("a",) and settings.outputs.upsample == "scores"
    assert values_of(settings)["batch_size"] == 8
    with pytest.raises(ConfigError) as caught:
        build(
            NodeSettings,
            {
                "upsample": "bicubic",
                "max_age": -1.0,
                "warmup": "yes",
                "qos.input.depth": 0,
                "nosuch": 1,
            },
        )
    message = str(caught.value)
    for phrase in (
        "upsample: 'bicubic' is not one of 'scores', 'labels'",
        "max_age: -1.0 is outside [0.0, 3600.0]",
        "warmup: 'yes' is not true or false",
        "qos.input.depth: 0 is outside [1, 100]",
        "nosuch: unknown option",
    ):
        assert phrase in message
    assert build(NodeSettings, {"max_age": 2}).max_age == 2.0  # an int where a float is wanted


def test_sections_keep_their_own_defaults() -> None:
    specs = {spec.name: spec for spec in option_specs(NodeSettings)}
    assert specs["qos.input.reliability"].default == "best_effort"
    assert specs["qos.output.reliability"].default == "reliable"
    assert "Camera subscriptions" in specs["qos.input.depth"].description
    assert "model" in specs and "segmenter.model" not in specs  # a flat section


def test_help_prints_usage_and_every_parameter_without_starting_a_node() -> None:
    launcher = [sys.executable, "-m", "vltseg_ros.ros.node.vltseg_node"]
    proc = subprocess.run(
        [*launcher, "--help"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ros2 run vltseg_ros vltseg_node")
    for spec in parameter_specs():
        name = f"<cam>.{spec.name[7:]}" if spec.name.startswith("camera.") else spec.name
        assert f"  {name} = " in proc.stdout, name
    assert "confidence_threshold = 0.0 [live]" in proc.stdout
    assert "model = '' [live]" not in proc.stdout
    assert "docs/node.md" in proc.stdout and "config/vltseg.yaml" in proc.stdout
    assert "active" not in proc.stderr  # no node was started
    proc = subprocess.run(
        [*launcher, "--verbose", "--ros-args", "-p", "model:=tiny"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "unrecognized arguments: --verbose" in proc.stderr
    assert "Traceback" not in proc.stderr
