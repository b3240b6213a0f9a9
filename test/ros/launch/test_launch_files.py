"""The launch files: arguments, executables, config files, the RViz config, and the node set-ups
they build, run end-to-end.

``launch`` / ``launch_ros`` cannot be installed here (shared/ENVIRONMENT.md), so the launch files
(and ``vltseg_ros.ros.launch.actions``, which they share) are read with ``ast``; their logic and
their shared arguments live in ``vltseg_ros.ros.launch.setups``, which the tests call with the
launch files' own defaults and run the node with, passing the ROS arguments
``launch_ros.actions.Node`` builds. The last test loads them with launch_ros itself, in a
subprocess: a ROS 2 machine's, or the sources in ../shared/ros2_launch (conftest.py:
``launch_environment``; it skips without either).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import py_compile
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from test.ros.harness import NODE, NodeProcess, Peer, camera_frame
from vltseg_ros.errors import ConfigError
from vltseg_ros.ros.launch import setups
from vltseg_ros.ros.launch.setups import (
    LaunchArgument,
    NodeSetup,
    camera_names,
    multi_camera,
    single_camera,
)
from vltseg_ros.ros.node.messages import array_to_image

REPO = Path(__file__).resolve().parents[3]
LAUNCH_ACTIONS = REPO / "vltseg_ros" / "ros" / "launch" / "actions.py"
COMMON = {"params_file", "model", "checkpoint", "backend", "device", "precision", "use_sim_time"}
COMMON |= {"large_data"}
CAMERA_ARGS = {"image", "camera_info", "transport", "namespace", "log_level"}
ARGUMENTS = {
    "vltseg.launch.py": CAMERA_ARGS | COMMON,
    "multi_camera.launch.py": {"cameras"} | CAMERA_ARGS | COMMON,
    "bag_replay.launch.py": {"bag", "out", "rate", "lockstep", "image_topic", "rviz"} | COMMON,
}
LAUNCH_FILES = sorted(ARGUMENTS)
NODE_CONFIGS = {"config/vltseg.yaml", "config/fastdds_large_data.xml"}
CONFIGS = {
    "vltseg.launch.py": NODE_CONFIGS,
    "multi_camera.launch.py": NODE_CONFIGS,
    "bag_replay.launch.py": NODE_CONFIGS | {"config/vltseg.rviz"},
}
EXECUTABLES = {
    "vltseg_node": LAUNCH_FILES,
    "vltseg_bag_player": ["bag_replay.launch.py"],
    "vltseg_replay_recorder": ["bag_replay.launch.py"],
}
CAMERA_INFO, CAMERA_INFO_TYPE = "camera/camera_info", "sensor_msgs/msg/CameraInfo"
FAST = {"inference": {"mode": "whole", "whole_size": [64, 128]}}  # the tiny model, one pass
NODE_SETUPS = {
    "vltseg.launch.py": ("single_camera(context.launch_configurations)",),
    "multi_camera.launch.py": ("multi_camera(context.launch_configurations)",),
    "bag_replay.launch.py": ("setup.node", "setup = bag_replay(context.launch_configurations)"),
}
"""Per launch file: the argument of its ``vltseg_node_action`` call, and assignments it makes."""


def _tree(name: str) -> ast.Module:
    return ast.parse((REPO / "launch" / name).read_text(), filename=name)


def _shared_functions(name: str) -> list[ast.FunctionDef]:
    """The functions of vltseg_ros.ros.launch.actions that launch file ``name`` calls."""
    calls = [node for node in ast.walk(_tree(name)) if isinstance(node, ast.Call)]
    called = {call.func.id for call in calls if isinstance(call.func, ast.Name)}
    tree = ast.parse(LAUNCH_ACTIONS.read_text(), filename=str(LAUNCH_ACTIONS))
    return [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name in called]


def _calls(tree: ast.AST, function: str) -> list[ast.Call]:
    """Every call of ``function`` (``f(...)`` or ``x.f(...)``) in ``tree``."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and function in (getattr(node.func, "id", None), getattr(node.func, "attr", None))
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literal(node: ast.expr | None) -> object:
    return None if node is None else ast.literal_eval(node)


def _argument(call: ast.Call) -> LaunchArgument:
    """A launch file's own ``DeclareLaunchArgument(...)`` (literal values) as data."""
    choices = _literal(_keyword(call, "choices"))
    return LaunchArgument(
        _literal(call.args[0]),
        _literal(_keyword(call, "default_value")),
        _literal(_keyword(call, "description")),
        None if choices is None else tuple(choices),
    )


def declared_arguments(name: str) -> dict[str, LaunchArgument]:
    """The arguments launch file ``name`` declares: its own ``DeclareLaunchArgument`` calls
    (literal values) and the ``vltseg_ros.ros.launch.setups`` groups it passes to
    ``declare_arguments``."""
    tree = _tree(name)
    arguments = [_argument(call) for call in _calls(tree, "DeclareLaunchArgument")]
    for call in _calls(tree, "declare_arguments"):
        arguments += [arg for group in call.args for arg in getattr(setups, group.id)]
    names = [argument.name for argument in arguments]
    assert len(names) == len(set(names)), f"{name} declares an argument twice: {names}"
    return dict(zip(names, arguments, strict=True))


def launch_arguments(name: str, **overrides: str) -> dict[str, str]:
    """The launch configuration ``ros2 launch vltseg_ros <name> key:=value ...`` produces:
    the defaults, a package file (params_file) in this checkout (what FindPackageShare finds
    once installed), then ``overrides``."""
    args = {
        arg.name: str(REPO / arg.default) if arg.in_share else arg.default
        for arg in declared_arguments(name).values()
        if arg.default is not None
    }
    return {**args, **overrides}


def ros_arguments(setup: NodeSetup, tmp_path: Path) -> list[str]:
    """What launch_ros.actions.Node passes for ``setup``: log level, name and namespace, the
    params file, the overrides as a params file keyed by the node's full name, the remaps; plus
    FAST for the test (last, so it wins)."""
    namespace = "/" + setup.namespace.strip("/")
    overrides = tmp_path / "launch_params.yaml"
    full_name = f"{namespace.rstrip('/')}/{NODE}"
    overrides.write_text(yaml.safe_dump({full_name: {"ros__parameters": setup.parameters}}))
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump({"/**": {"ros__parameters": FAST}}))
    args = ["--log-level", setup.log_level, "-r", f"__node:={NODE}", "-r", f"__ns:={namespace}"]
    for params_file in (setup.params_file, overrides, fast):
        args += ["--params-file", str(params_file)]
    for source, target in setup.remappings:
        args += ["-r", f"{source}:={target}"]
    return args


# ---- the launch files, read as text ------------------------------------------------------------


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_compiles_and_has_generate_launch_description(name, tmp_path) -> None:
    py_compile.compile(str(REPO / "launch" / name), cfile=str(tmp_path / "x.pyc"), doraise=True)
    functions = [f.name for f in _tree(name).body if isinstance(f, ast.FunctionDef)]
    assert "generate_launch_description" in functions


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_declares_exactly_its_arguments_each_described(name) -> None:
    declared = declared_arguments(name)
    assert set(declared) == ARGUMENTS[name]
    for arg, argument in declared.items():
        assert argument.description, f"{name}: {arg} has no description"
        has_default = argument.default is not None
        assert has_default == (arg != "bag"), f"{name}: {arg} (only bag is required)"


def _started(name: str, executable: str, shared: bool = True) -> list[ast.Call]:
    """The ``Node`` / ``LifecycleNode`` calls that start ``executable`` of vltseg_ros in launch
    file ``name``: its own, and (``shared``) those of the shared functions it calls."""
    return [
        call
        for tree in (_tree(name), *(_shared_functions(name) if shared else ()))
        for call in _calls(tree, "Node") + _calls(tree, "LifecycleNode")
        if ast.literal_eval(_keyword(call, "package")) == "vltseg_ros"
        and ast.literal_eval(_keyword(call, "executable")) == executable
    ]


@pytest.mark.parametrize("executable", sorted(EXECUTABLES))
def test_executables_exist_and_are_installed(executable) -> None:
    referenced = {name for name in LAUNCH_FILES if _started(name, executable)}
    assert referenced == set(EXECUTABLES[executable])
    script = REPO / "scripts" / executable
    assert script.is_file() and os.access(script, os.X_OK)
    cmake = (REPO / "CMakeLists.txt").read_text()
    (programs,) = re.findall(r"foreach\(program ([^)]*)\)", cmake)  # written with their shebang
    assert executable in programs.split()
    assert "install(PROGRAMS ${CMAKE_CURRENT_BINARY_DIR}/launchers/${program}" in cmake
    installed = Path(sys.prefix) / "lib" / "vltseg_ros" / executable  # by make setup
    if installed.is_file():
        assert installed.read_text().splitlines()[0] == f"#!{sys.prefix}/bin/python"


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_starts_vltseg_node_once_as_its_setup_says(name) -> None:
    """vltseg_node named vltseg_node, in the setup's namespace, its params file then the
    setup's parameters, its remappings and log level: one ``vltseg_node_action`` call with
    the node setup of ``vltseg_ros.ros.launch.setups``."""
    tree = _tree(name)
    (call,) = _calls(tree, "vltseg_node_action")
    setup, *assigned = NODE_SETUPS[name]
    assert ast.unparse(call) == f"vltseg_node_action({setup})"
    assignments = {ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Assign)}
    assert set(assigned) <= assignments
    assert not _started(name, "vltseg_node", shared=False)  # only through the shared function
    (node,) = _started(name, "vltseg_node")
    assert {k.arg: ast.unparse(k.value) for k in node.keywords} == {
        "package": "'vltseg_ros'",
        "executable": "'vltseg_node'",
        "name": "'vltseg_node'",
        "namespace": "setup.namespace",
        "parameters": "[setup.params_file, setup.parameters]",
        "remappings": "list(setup.remappings)",
        "ros_arguments": "['--log-level', setup.log_level]",
        "output": "'screen'",
    }


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_referenced_config_files_exist(name) -> None:
    referenced = {arg.default for arg in declared_arguments(name).values() if arg.in_share}
    for tree in (_tree(name), *_shared_functions(name)):
        for call in _calls(tree, "PathJoinSubstitution"):
            share, *parts = call.args[0].elts
            assert ast.unparse(share) in ('FindPackageShare("vltseg_ros")', "share")
            referenced.add("/".join(ast.literal_eval(part) for part in parts))
    assert referenced == CONFIGS[name]
    assert all((REPO / path).is_file() for path in referenced)


@pytest.mark.parametrize(
    "path",
    [
        *(f"launch/{n}" for n in LAUNCH_FILES),
        "vltseg_ros/ros/launch/setups.py",
        "vltseg_ros/ros/launch/actions.py",
    ],
)
def test_no_eval_or_subprocess(path) -> None:
    text = (REPO / path).read_text()
    for forbidden in ("eval(", "exec(", "subprocess", "os.system"):
        assert forbidden not in text, f"{path} uses {forbidden}"


def test_rviz_config_shows_image_overlay_mask_and_confidence() -> None:
    config = yaml.safe_load((REPO / "config" / "vltseg.rviz").read_text())
    assert {"Panels", "Visualization Manager", "Window Geometry"} <= set(config)
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "camera" and manager["Tools"]
    displays = {d["Topic"]["Value"]: d for d in manager["Displays"]}
    reliability = {
        "/camera/image_raw": "Best Effort",
        "/camera/segmentation/overlay": "Reliable",
        "/camera/segmentation/mask": "Reliable",
        "/camera/segmentation/confidence": "Reliable",
    }
    assert set(displays) == set(reliability)
    for topic, display in displays.items():
        assert display["Class"] == "rviz_default_plugins/Image" and display["Enabled"]
        assert display["Topic"]["Reliability Policy"] == reliability[topic]
        assert display["Topic"]["Durability Policy"] == "Volatile"
        assert display["Name"] in config["Window Geometry"]  # its image panel
    for topic in ("/camera/segmentation/mask", "/camera/segmentation/confidence"):
        assert displays[topic]["Normalize Range"] is False
    confidence = displays["/camera/segmentation/confidence"]
    assert (confidence["Min Value"], confidence["Max Value"]) == (0, 1)


# ---- the launch logic (vltseg_ros.ros.launch.setups) ------------------------------------------


def test_single_camera_defaults_remap_raw_compressed_and_camera_info() -> None:
    setup = single_camera(launch_arguments("vltseg.launch.py"))
    assert setup.namespace == "" and setup.params_file.endswith("config/vltseg.yaml")
    assert setup.remappings == (
        ("camera/image_raw", "/camera/image_raw"),
        ("camera/image_raw/compressed", "/camera/image_raw/compressed"),
        ("camera/camera_info", "/camera/camera_info"),
    )
    assert setup.parameters == {
        "device": "cpu",
        "precision": "fp32",
        "use_sim_time": False,
        "cameras": ["camera"],
        "camera.image_topic": "camera/image_raw",
        "camera.camera_info_topic": "camera/camera_info",
        "camera.transport": "raw",
    }  # model, checkpoint and backend empty: the params file's stay
    custom = single_camera(
        launch_arguments(
            "vltseg.launch.py",
            camera_info="",
            model="tiny",
            checkpoint="~/w.st",
            backend="pytorch",
        )
    )
    assert custom.parameters["camera.camera_info_topic"] == ""
    assert ("camera/camera_info", "") not in custom.remappings and len(custom.remappings) == 2
    assert custom.parameters["model"] == "tiny"
    assert custom.parameters["checkpoint"] == os.path.expanduser("~/w.st")
    assert custom.parameters["backend"] == "pytorch"


@pytest.mark.parametrize(
    "overrides",
    [
        {"transport": "jpeg"},
        {"image": "/cam/image_raw/compressed", "transport": "compressed"},
        {"image": ""},
        {"use_sim_time": "yes"},
    ],
)
def test_single_camera_rejects_bad_arguments(overrides) -> None:
    with pytest.raises(ConfigError, match="launch argument"):
        single_camera(launch_arguments("vltseg.launch.py", **overrides))


def test_camera_names_and_multi_camera_topics() -> None:
    assert camera_names(" front,left ,right,") == ["front", "left", "right"]
    for bad in ("", "front,front", "front,2nd", "front/left"):
        with pytest.raises(ConfigError, match="cameras"):
            camera_names(bad)
    args = launch_arguments("multi_camera.launch.py", image="/{camera}/color/image_raw")
    setup = multi_camera(args)
    assert setup.parameters["cameras"] == ["front", "left", "right"] and not setup.remappings
    assert setup.parameters["left.image_topic"] == "/left/color/image_raw"
    assert setup.parameters["left.camera_info_topic"] == "/left/camera_info"
    no_info = multi_camera({**args, "camera_info": ""}).parameters
    assert no_info["front.camera_info_topic"] == no_info["right.camera_info_topic"] == ""
    with pytest.raises(ConfigError, match=r"\{camera\}"):
        multi_camera({**args, "image": "/image_raw"})


@pytest.mark.parametrize(
    ("bag_image", "msgtype", "subscribed"),
    [
        ("/cam/image_raw", "Image", "camera/image_raw"),
        ("/cam/image_raw/compressed", "CompressedImage", "camera/image_raw/compressed"),
        ("/cam/jpeg", "CompressedImage", "camera/image_raw/compressed"),
    ],
)
@pytest.mark.parametrize("sim_time", ["true", "false"])
def test_bag_replay_follows_the_bags_topics(monkeypatch, bag_image, msgtype, subscribed, sim_time):
    compressed = msgtype == "CompressedImage"
    topics = [SimpleNamespace(name=bag_image, msgtype=f"sensor_msgs/msg/{msgtype}")]
    if not compressed:
        topics.append(SimpleNamespace(name="/cam/camera_info", msgtype=CAMERA_INFO_TYPE))
    found = SimpleNamespace(image_topic=bag_image, compressed=compressed, topics=topics)
    calls = []
    monkeypatch.setattr(
        "vltseg_ros.bag.topics.find_topics", lambda bag, image: calls.append(image) or found
    )
    args = launch_arguments("bag_replay.launch.py", bag="/data/drive", use_sim_time=sim_time)
    setup = setups.bag_replay(args)
    assert calls == [None]  # image_topic "" = detect, as the player does
    node = setup.node
    assert node.namespace == "" and node.parameters["autostart"] is True
    assert node.parameters["camera.transport"] == ("compressed" if compressed else "raw")
    assert (subscribed, bag_image) in node.remappings
    assert node.parameters["camera.camera_info_topic"] == ("" if compressed else CAMERA_INFO)
    assert (CAMERA_INFO, "/cam/camera_info") in node.remappings or compressed
    expected_max_age = None if sim_time == "true" else 0.0  # wall clock: stamps are old
    assert node.parameters.get("max_age") == expected_max_age
    assert setup.player == {
        "bag": "/data/drive",
        "rate": 1.0,
        "lockstep": False,
        "image_topic": bag_image,
        "mask_topic": "camera/segmentation/mask",
        "wait_for_node": "/vltseg_node",  # the player starts once the node is active
        "wait_for_recorder": "/vltseg_replay_recorder/ready",  # and the recorder listens
    }
    assert setup.recorder == {"bag": "/data/drive", "out": "replay_eval", "camera": "camera"}
    assert setup.rviz is False
    assert setup.rviz_remappings == (() if compressed else (("/camera/image_raw", bag_image),))
    with pytest.raises(ConfigError, match="rate"):
        setups.bag_replay({**args, "rate": "-1"})


def test_bag_replay_with_a_real_bag(tmp_path) -> None:
    """The player's own topic detection: the color image, not the labels; its camera_info."""
    from vltseg_ros.bag.serialization import camera_info_cdr, image_cdr
    from vltseg_ros.bag.writing import BagWriter

    bag = tmp_path / "drive"
    with BagWriter(bag) as writer:
        for topic, msgtype in (("/front/image_raw", "Image"), ("/front/labels", "Image")):
            writer.add_topic(topic, f"sensor_msgs/msg/{msgtype}")
        writer.add_topic("/front/camera_info", CAMERA_INFO_TYPE)
        image = np.zeros((32, 64, 3), np.uint8)
        writer.write("/front/image_raw", 1, image_cdr(image, "rgb8", 1, "front"))
        writer.write("/front/labels", 1, image_cdr(image[..., 0], "mono8", 1, "front"))
        writer.write("/front/camera_info", 1, camera_info_cdr(32, 64, 1, "front"))
    setup = setups.bag_replay(launch_arguments("bag_replay.launch.py", bag=str(bag)))
    assert setup.player["image_topic"] == "/front/image_raw"
    assert ("camera/image_raw", "/front/image_raw") in setup.node.remappings
    assert (CAMERA_INFO, "/front/camera_info") in setup.node.remappings


# ---- the node as the launch files configure it, end-to-end ------------------------------------


def _until_received(peer: Peer, topics: list[str], publish, timeout: float = 90.0) -> None:
    """Publish (best-effort input, as in a launch) every 0.5 s until every topic has a message."""
    deadline = time.monotonic() + timeout
    while not all(peer.messages(t) for t in topics):
        if time.monotonic() > deadline:
            pytest.fail(f"no message on {[t for t in topics if not peer.messages(t)]}")
        publish()
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("overrides", "image_topic", "outputs"),
    [
        ({}, "/camera/image_raw", "/camera/segmentation"),
        (
            {"namespace": "robot", "image": "/cam0/image_raw", "camera_info": "/cam0/camera_info"}
            | {"transport": "compressed"},
            "/cam0/image_raw/compressed",
            "/robot/camera/segmentation",
        ),
    ],
    ids=["defaults", "namespace-compressed"],
)
def test_vltseg_launch_node_runs(ros, tmp_path, overrides, image_topic, outputs) -> None:
    peer, env = ros
    args = launch_arguments("vltseg.launch.py", model="tiny", **overrides)
    node = NodeProcess(tmp_path, {}, env, ros_arguments(single_camera(args), tmp_path))
    try:
        peer.listen(f"{outputs}/mask", Image)
        peer.listen(f"{outputs}/camera_info", CameraInfo)
        compressed = args["transport"] == "compressed"
        peer.wait_for_subscriber(image_topic, CompressedImage if compressed else Image)
        frame = camera_frame(128, 256)

        def publish() -> None:
            header = peer.header("launch")
            peer.publish(args["camera_info"], CameraInfo(header=header, height=128, width=256))
            if compressed:
                data = cv2.imencode(".jpg", frame[..., ::-1])[1].tobytes()
                peer.publish(image_topic, CompressedImage(header=header, format="jpeg", data=data))
            else:
                peer.publish(image_topic, array_to_image(frame, "rgb8", header))

        _until_received(peer, [f"{outputs}/mask", f"{outputs}/camera_info"], publish)
        mask = peer.messages(f"{outputs}/mask")[0]
        assert (mask.header.frame_id, mask.encoding) == ("launch", "mono8")
        assert (mask.height, mask.width) == (128, 256)
        assert np.frombuffer(mask.data, np.uint8).max() < 19  # train ids, no threshold
        info = peer.messages(f"{outputs}/camera_info")[0]
        assert (info.header.frame_id, info.height, info.width) == ("launch", 128, 256)
        assert node.alive()
    finally:
        node.stop()


def test_multi_camera_launch_node_runs(ros, tmp_path) -> None:
    peer, env = ros
    args = launch_arguments("multi_camera.launch.py", cameras="front,rear", model="tiny")
    node = NodeProcess(tmp_path, {}, env, ros_arguments(multi_camera(args), tmp_path))
    try:
        masks = {name: f"/{name}/segmentation/mask" for name in ("front", "rear")}
        for topic in masks.values():
            peer.listen(topic, Image)
        for name in masks:
            peer.wait_for_subscriber(f"/{name}/image_raw", Image)
        frame = camera_frame(128, 256)

        def publish() -> None:
            for name in masks:
                peer.publish(
                    f"/{name}/image_raw", array_to_image(frame, "rgb8", peer.header(name))
                )

        _until_received(peer, list(masks.values()), publish)
        for name, topic in masks.items():
            assert peer.messages(topic)[0].header.frame_id == name
    finally:
        node.stop()


# ---- with launch_ros (../shared/ros2_launch, or a ROS 2 machine) -------------------------------

LAUNCH_ROS_CHECK = """
import importlib.util, json, sys
from launch.actions import OpaqueFunction
from launch.launch_context import LaunchContext

path, configurations = sys.argv[1], json.loads(sys.argv[2])
spec = importlib.util.spec_from_file_location("launch_file", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
description = module.generate_launch_description()
found = {
    "arguments": [
        {"name": a.name, "description": a.description, "choices": a.choices}
        for a in description.get_launch_arguments()
    ]
}
if configurations is not None:
    context = LaunchContext()
    context.launch_configurations.update(configurations)
    opaque = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    (node,) = opaque[0].visit(context)
    node._perform_substitutions(context)  # private, but what Node.execute runs first
    found["node"] = {
        "package": node.node_package,
        "executable": node.node_executable,
        "namespace": node.expanded_node_namespace,
        "remappings": [list(rule) for rule in node.expanded_remapping_rules or []],
    }
print(json.dumps(found))
"""
"""Loads a launch file with launch / launch_ros (in a process whose environment has them) and
prints its declared arguments and, given launch configurations, the Node its OpaqueFunction
builds, as JSON."""


@pytest.fixture
def launch_ros_environment(request) -> dict[str, str]:
    """Environment additions under which launch_ros imports: none on a ROS 2 machine, else
    those of ../shared/ros2_launch (skips without it)."""
    if importlib.util.find_spec("launch_ros") is not None:
        return {}
    return request.getfixturevalue("launch_environment")


@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_description_with_launch_ros(name, launch_ros_environment) -> None:
    """The launch file as launch_ros loads it: the arguments read with ast, and the node the
    setup of ``vltseg_ros.ros.launch.setups`` describes."""
    configurations = (
        None if name == "bag_replay.launch.py" else launch_arguments(name, model="tiny")
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCH_ROS_CHECK,
            str(REPO / "launch" / name),
            json.dumps(configurations),
        ],
        env={**os.environ, **launch_ros_environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    declared = declared_arguments(name)  # as read with ast
    assert {a["name"] for a in found["arguments"]} == ARGUMENTS[name]
    for argument in found["arguments"]:
        expected = declared[argument["name"]]
        assert argument["description"].startswith(expected.description), argument["name"]
        assert argument["choices"] == (expected.choices and list(expected.choices))
    if configurations is None:
        return  # bag_replay's OpaqueFunction needs a bag
    setup = (single_camera if name == "vltseg.launch.py" else multi_camera)(configurations)
    node = found["node"]
    assert (node["package"], node["executable"]) == ("vltseg_ros", "vltseg_node")
    assert node["namespace"] == "/"
    assert node["remappings"] == [list(rule) for rule in setup.remappings]
