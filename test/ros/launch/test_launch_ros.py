"""The launch files started by the real ROS 2 launch system (``launch.LaunchService``, as
``ros2 launch`` does), from the unmodified sources in ``../shared/ros2_launch``.

Those sources are not on PyPI and not part of the project: without the folder every test here
skips. Its README's recipe is followed: ``composition_interfaces`` (which launch_ros imports) is
built once per run and the sources go on PYTHONPATH (conftest.py: ``launch_environment``). The
launch process gets a PATH without the venv, so the node's launcher must find its interpreter
itself (its shebang is written at build time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sensor_msgs.msg import CameraInfo, Image

from test.ros.harness import camera_frame
from vltseg_ros.ros.node.messages import array_to_image

REPO = Path(__file__).resolve().parents[3]
RUNNER = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

path, *pairs = sys.argv[1:]
service = LaunchService()
arguments = [tuple(pair.split(":=", 1)) for pair in pairs]
service.include_launch_description(
    IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments)
)
sys.exit(service.run())
"""


class Launch:
    """``ros2 launch vltseg_ros <file> <arguments>`` in a subprocess, output kept."""

    def __init__(self, name: str, arguments: dict[str, str], env: dict[str, str], log: Path):
        runner = log.with_name("run_launch.py")
        runner.write_text(RUNNER)
        pairs = [f"{key}:={value}" for key, value in arguments.items()]
        self.log_path, self._log = log, log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(runner), str(REPO / "launch" / name), *pairs],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the launch did not end in {timeout:.0f} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # as Ctrl-C on ros2 launch
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self._log.close()


def _until_masks(peer, launch: Launch, cameras: dict[str, str], timeout: float = 120.0) -> None:
    """Publish a frame per camera (best effort, as a driver would) every 0.5 s until every
    camera's mask arrived; ``cameras``: input topic -> output prefix."""
    frame = camera_frame(128, 256)
    for prefix in cameras.values():
        peer.listen(f"{prefix}/mask", Image)
    deadline = time.monotonic() + timeout
    while not all(peer.messages(f"{prefix}/mask") for prefix in cameras.values()):
        if time.monotonic() > deadline or launch.process.poll() is not None:
            pytest.fail(f"no mask on {list(cameras.values())}:\n{launch.log()[-3000:]}")
        for topic in cameras:
            header = peer.header(topic.strip("/").split("/")[0])
            peer.publish(topic, array_to_image(frame, "rgb8", header))
            peer.publish(topic.replace("image_raw", "camera_info"), CameraInfo(header=header))
        time.sleep(0.5)


def test_vltseg_launch(ros, tmp_path, launch_environment) -> None:
    peer, env = ros
    launch = Launch(
        "vltseg.launch.py",
        {"model": "tiny", "image": "/front/image_raw", "camera_info": "/front/camera_info"},
        {**env, **launch_environment},
        tmp_path / "launch.log",
    )
    try:
        peer.listen("/camera/segmentation/camera_info", CameraInfo)
        _until_masks(peer, launch, {"/front/image_raw": "/camera/segmentation"})
        mask = peer.messages("/camera/segmentation/mask")[0]
        assert (mask.header.frame_id, mask.encoding, mask.height, mask.width) == (
            "front", "mono8", 128, 256,
        )  # fmt: skip
        assert max(mask.data) < 19
    finally:
        launch.stop()
    log = launch.log()
    assert "Traceback" not in log and "RANDOM weights" in log


def test_multi_camera_launch(ros, tmp_path, launch_environment) -> None:
    peer, env = ros
    launch = Launch(
        "multi_camera.launch.py",
        {"model": "tiny", "cameras": "front,rear", "namespace": "robot"},
        {**env, **launch_environment},
        tmp_path / "launch.log",
    )
    try:
        cameras = {f"/{c}/image_raw": f"/robot/{c}/segmentation" for c in ("front", "rear")}
        _until_masks(peer, launch, cameras)
        for camera, prefix in zip(("front", "rear"), cameras.values(), strict=True):
            assert peer.messages(f"{prefix}/mask")[0].header.frame_id == camera
    finally:
        launch.stop()


def test_bag_replay_launch_runs_to_its_report(ros, tmp_path, launch_environment) -> None:
    from vltseg_ros.cli.main import main

    _, env = ros
    bag, out = tmp_path / "bag", tmp_path / "replay"
    assert (
        main(["make-bag", "-", str(bag), "--synthetic", "3", "--synthetic-size", "64", "128"]) == 0
    )
    launch = Launch(
        "bag_replay.launch.py",
        {"bag": str(bag), "out": str(out), "model": "tiny", "lockstep": "true"},
        {**env, **launch_environment},
        tmp_path / "launch.log",
    )
    try:
        assert launch.wait(300) == 0, launch.log()[-3000:]
    finally:
        launch.stop()
    report = json.loads((out / "report.json").read_text())
    assert report["frames"] == 3 and report["dropped_frames"] == 0
    assert (out / "segmented" / "metadata.yaml").is_file()


def test_bag_replay_launch_stops_when_the_node_cannot_start(ros, tmp_path, launch_environment):
    from vltseg_ros.cli.main import main

    _, env = ros
    bag = tmp_path / "bag"
    assert main(["make-bag", "-", str(bag), "--synthetic", "2"]) == 0
    missing = tmp_path / "missing.safetensors"
    launch = Launch(
        "bag_replay.launch.py",
        {"bag": str(bag), "out": str(tmp_path / "replay"), "checkpoint": str(missing)},
        {**env, **launch_environment},
        tmp_path / "launch.log",
    )
    try:
        launch.wait(180)  # the player's error shuts the launch down, within seconds
    finally:
        launch.stop()
    log = launch.log()
    assert "configure failed" in log and "missing.safetensors" in log, log[-3000:]
    assert "not playing: /vltseg_node is unconfigured, not active" in log, log[-3000:]
    report = json.loads((tmp_path / "replay" / "report.json").read_text())  # on its SIGINT
    assert report["frames"] == 0 and report["dropped_frames"] == 2
