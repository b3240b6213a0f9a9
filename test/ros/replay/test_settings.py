"""The player's and the recorder's parameters: declared from their tables with descriptions and
ranges, validated (an invalid one: a one-line error, exit code 2), and every name that
``bag_replay.launch.py`` (:func:`setups.bag_replay`) and ``bag-eval --live``
(:mod:`vltseg_ros.ros.replay.live`) pass is in the table."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from rclpy.parameter import Parameter

from test.ros.harness import ros_environment
from vltseg_ros.bag.make_bag import BagLayout, synthetic_frames, write_frames_bag
from vltseg_ros.config.options import build, option_specs
from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.launch import setups
from vltseg_ros.ros.replay import live
from vltseg_ros.ros.replay.player import BagPlayer
from vltseg_ros.ros.replay.recorder import ReplayRecorder
from vltseg_ros.ros.replay.settings import PlayerSettings, RecorderSettings

TABLES = {BagPlayer: PlayerSettings, ReplayRecorder: RecorderSettings}
EXECUTABLES = {BagPlayer: "player", ReplayRecorder: "recorder"}


@pytest.fixture
def bag(tmp_path):
    path = tmp_path / "input"
    write_frames_bag(path, synthetic_frames(2, 32, 64), BagLayout(rate=10.0))
    return path


def _names(table: type) -> set[str]:
    return {spec.name for spec in option_specs(table)}


def test_the_tables_keep_the_old_names_and_defaults() -> None:
    assert {spec.name: spec.default for spec in option_specs(RecorderSettings)} == {
        "bag": "",
        "out": "replay_eval",
        "camera": "camera",
        "label_topic": "",
        "idle_timeout": 10.0,
        "start_timeout": 600.0,
        "write_bag": True,
        "output_bag": "",
        "save_overlays": False,
    }
    assert {spec.name: spec.default for spec in option_specs(PlayerSettings)} == {
        "bag": "",
        "rate": 1.0,
        "lockstep": False,
        "image_topic": "",
        "mask_topic": "camera/segmentation/mask",
        "lockstep_timeout": 600.0,
        "subscriber_timeout": 60.0,
        "wait_for_node": "",
        "wait_for_recorder": "",
        "node_timeout": 900.0,
    }
    for table in TABLES.values():
        assert all(spec.description for spec in option_specs(table))


@pytest.mark.parametrize("node_class", list(TABLES), ids=EXECUTABLES.get)
def test_declared_with_descriptions_and_ranges(context, bag, tmp_path, node_class) -> None:
    overrides = {"bag": str(bag)}
    if node_class is ReplayRecorder:
        overrides |= {"out": str(tmp_path / "eval"), "write_bag": False}
    parameters = [Parameter(name, value=value) for name, value in overrides.items()]
    node = node_class(context=context, parameter_overrides=parameters)
    try:
        for spec in option_specs(TABLES[node_class]):
            value = node.get_parameter(spec.name).value
            assert value == overrides.get(spec.name, spec.default), spec.name
            descriptor = node.describe_parameter(spec.name)
            assert descriptor.description == spec.description
            if spec.range is not None:
                (bounds,) = descriptor.floating_point_range
                assert (bounds.from_value, bounds.to_value) == (0.0, math.inf)
    finally:
        node.destroy_node()


@pytest.mark.parametrize(
    ("node_class", "overrides"),
    [
        (ReplayRecorder, {"idle_timeout": -1.0}),
        (ReplayRecorder, {"idle_timeout": -1, "start_timeout": -2.0}),
        (BagPlayer, {"rate": -1.0, "node_timeout": "long"}),
        (BagPlayer, {"lockstep": 1}),
    ],
)
def test_invalid_values_are_refused_naming_each(context, node_class, overrides) -> None:
    parameters = [Parameter(name, value=value) for name, value in overrides.items()]
    with pytest.raises(ConfigError) as error:
        node_class(context=context, parameter_overrides=parameters)  # before opening the bag
    message = str(error.value)
    assert message.startswith("invalid parameters: ") and "\n" not in message
    assert all(f"{name}: " in message for name in overrides)


@pytest.mark.parametrize(
    ("module", "argument"),
    [("recorder", "idle_timeout:=-1"), ("player", "subscriber_timeout:=-0.5")],
)
def test_an_invalid_parameter_exits_2_with_one_line(tmp_path, module, argument) -> None:
    executable = {"recorder": "vltseg_replay_recorder", "player": "vltseg_bag_player"}[module]
    done = subprocess.run(
        [sys.executable, "-m", f"vltseg_ros.ros.replay.{module}", "--ros-args", "-p", argument],
        env={**os.environ, **ros_environment(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{executable}: error: invalid parameters: {argument.split(':')[0]}")
    assert "Traceback" not in done.stderr


def test_the_launch_setup_passes_only_valid_table_parameters(bag) -> None:
    args = {
        "bag": str(bag),
        "out": "replay_eval",
        "rate": "2.5",
        "lockstep": "true",
        "image_topic": "",
        "params_file": "config/vltseg.yaml",
        "model": "",
        "checkpoint": "",
        "backend": "",
        "device": "cpu",
        "precision": "fp32",
        "use_sim_time": "true",
        "rviz": "false",
    }
    setup = setups.bag_replay(args)
    assert set(setup.player) <= _names(PlayerSettings)
    assert set(setup.recorder) <= _names(RecorderSettings)
    assert build(PlayerSettings, setup.player).rate == 2.5  # raises if a value is invalid
    assert build(RecorderSettings, setup.recorder).bag == str(bag)


def test_the_live_replay_passes_only_valid_table_parameters(monkeypatch, tmp_path) -> None:
    """``bag-eval --live``: the overrides live.py gives the in-process player and recorder."""
    passed: dict[str, list[Parameter]] = {}

    class Stop(Exception):
        pass

    def player(parameter_overrides):
        passed["player"] = parameter_overrides
        return SimpleNamespace(destroy_node=lambda: None)  # destroyed once the recorder failed

    def recorder(parameter_overrides):
        passed["recorder"] = parameter_overrides
        raise Stop

    fake_rclpy = SimpleNamespace(init=lambda **options: None, try_shutdown=lambda: 0)
    monkeypatch.setattr(live, "rclpy", fake_rclpy)
    monkeypatch.setattr(live, "BagPlayer", player)
    monkeypatch.setattr(live, "ReplayRecorder", recorder)
    options = {"rate": 0.5, "lockstep": True, "output_bag": None}
    options |= {"save_overlays": True, "idle_timeout": 3.0}
    with pytest.raises(Stop):
        live._play_and_record(tmp_path / "bag", tmp_path / "out", None, options)
    for name, table in (("player", PlayerSettings), ("recorder", RecorderSettings)):
        values = {parameter.name: parameter.value for parameter in passed[name]}
        assert set(values) <= _names(table), name
        build(table, values)  # raises if a value is invalid
