"""What the README and docs/node.md tell users to type, as real ``ros2`` processes.

The ``ros2`` command line is built from the unmodified ros2cli and launch sources in
``../shared`` (test/ros/ros2_cli.py; every test here skips without them). The node runs with
``model:=tiny`` (random weights: fast). One ``ros2 run`` node serves the queries of this module
(``node``, in a private ROS_DOMAIN_ID); the launch files start their own nodes in a second
private domain (``launch_ros2``), so that their ``/vltseg_node`` never meets that one.

To add a check: ``ros2(*args, timeout=...)`` returns the ``CompletedProcess`` of one command,
``ros2.until(*args, expect=regex_or_predicate)`` repeats a query until it matches (discovery
lags: use it for the first query of a node), ``ros2.start(*args)`` starts a long-running
command (a ``Ros2Process``: ``wait_for(regex)``, ``interrupt()``, ``wait()``, ``log()``).
A test that changes the node (a parameter, a lifecycle state) puts it back.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator

import pytest
import yaml

from test.conftest import private_domain_id
from test.ros.harness import TRANSITIONS
from test.ros.ros2_cli import (
    HANG_ATTEMPTS,
    Ros2,
    Ros2Process,
    node_info,
    ros2_prefix,
    warn_hangs,
)

NODE = "/vltseg_node"
ACTIVE = r"\]: active$"  # the node's log line once it is active


@pytest.fixture(scope="module")
def ros2(tmp_path_factory) -> Iterator[Ros2]:
    """The ``ros2`` command line in this test process's private domain (the ``ros`` fixture's:
    the test's own rclpy peer meets the node there)."""
    cli = Ros2(ros2_prefix(tmp_path_factory), tmp_path_factory.mktemp("ros2_cli_run"))
    yield cli
    cli.close()


@pytest.fixture(scope="module")
def node(ros2: Ros2) -> Iterator[Ros2Process]:
    """``ros2 run vltseg_ros vltseg_node --ros-args -p model:=tiny``, active and discovered;
    stopped with SIGINT to its process group, as Ctrl-C.

    Beside it runs a long-lived client, ``ros2 service call --rate 1 .../get_state``: when a
    fresh ``ros2`` command hangs, the record (Ros2.hang_record) shows whether the node went on
    answering a client that discovered it long before (when it last printed an answer)."""
    process = ros2.start("run", "vltseg_ros", "vltseg_node", "--ros-args", "-p", "model:=tiny")
    try:
        process.wait_for(ACTIVE, timeout=120)
        ros2.until("node", "list", expect=f"^{NODE}$")
        watch = _answered_client(ros2)
        yield process
        if watch is not None:
            assert watch.alive(), watch.log()[-2000:]
            watch.interrupt()
    finally:
        process.interrupt(group=True)


def _answered_client(ros2: Ros2) -> Ros2Process | None:
    """``ros2 service call --rate 1 NODE/get_state ...`` once it printed its first answer:
    started again (Ctrl-C first) when that first request was lost (test/ros/ros2_cli.py says
    why), up to HANG_ATTEMPTS times; None (a diagnostic less, with a warning) after that."""
    for _ in range(HANG_ATTEMPTS):
        watch = ros2.start(
            "service", "call", "--rate", "1", f"{NODE}/get_state", "lifecycle_msgs/srv/GetState"
        )
        deadline = time.monotonic() + 20
        while "response:" not in watch.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        if "response:" in watch.log():
            return watch
        watch.interrupt()
    warnings.warn(f"no answer to `ros2 service call` in {HANG_ATTEMPTS} tries", stacklevel=2)
    return None


@pytest.fixture(scope="module")
def launch_ros2(tmp_path_factory) -> Iterator[Ros2]:
    """The ``ros2`` command line in a second private domain, for the launch files' nodes."""
    home = tmp_path_factory.mktemp("ros2_cli_launch")
    cli = Ros2(ros2_prefix(tmp_path_factory), home, domain=private_domain_id(200, 30))
    yield cli
    cli.close()


def test_run_reaches_active(ros2: Ros2, node: Ros2Process) -> None:
    log = node.log()
    assert "model 'tiny'" in log and "RANDOM weights" in log, log[-3000:]
    assert "Traceback" not in log
    assert NODE in ros2.until("node", "list", expect=f"^{NODE}$").stdout.split()


def _transition(ros2: Ros2, node: Ros2Process, name: str, timeout: float = 30.0) -> None:
    """``ros2 lifecycle set NODE name``; the node must reach the transition's state, and the
    command, when it ends, print "Transitioning successful".

    A command that hangs (its request or the answer lost: test/ros/ros2_cli.py says why) is
    recorded, and the node's state decides, as it would for a user: still in the start state
    with nothing printed (the request never arrived) -> typed again, up to HANG_ATTEMPTS times
    in all; already in the target state (the answer was lost) -> done. Anything else fails the
    test. The records are a warning when it went on, the failure's message otherwise."""
    _, start, target = TRANSITIONS[name]
    hangs = []
    for _ in range(HANG_ATTEMPTS):
        log_before = len(node.log())
        done = ros2._run(("lifecycle", "set", NODE, name), timeout)
        if done.returncode is not None:
            assert done.returncode == 0 and "Transitioning successful" in done.stdout, done
            break
        printed = node.log()[log_before:].strip()
        hangs.append(ros2.hang_record(done))
        state = ros2.until("lifecycle", "get", NODE, expect=r"\w").stdout.split(" [")[0]
        if state == target:
            break
        if state != start or printed:
            pytest.fail(f"state {state!r}, node printed {printed[-2000:]!r}\n" + "\n".join(hangs))
    else:
        pytest.fail("\n".join(hangs))
    warn_hangs(("lifecycle", "set", NODE, name), hangs)
    got = ros2.until("lifecycle", "get", NODE, expect=r"\w").stdout
    assert got.startswith(f"{target} ["), got


def test_a_hung_command_leaves_a_record(ros2: Ros2, node: Ros2Process) -> None:
    """The harness's record of a command that hangs (ros2_cli.Ros2.hang_record), which the
    tests above report when a ``ros2`` query does not end: where the command waited, whether
    the daemon answers, the node's output and stacks, the long-lived client's last answer."""
    hung = ros2._run(("topic", "echo", "/vltseg_test_silent", "std_msgs/msg/String"), 8)
    assert hung.returncode is None
    assert "did not end in 8 s (stacks at SIGUSR1; exit code " in hung.stderr, hung.stderr
    assert "(most recent call first)" in hung.stderr and "ros2topic" in hung.stderr, hung.stderr
    record = ros2.hang_record(hung)
    assert re.search(r"daemon: answered in [\d.]+ s \(\d+ methods\)", record), record
    assert re.search(r"`run vltseg_ros vltseg_node --ros-args` last printed [\d.]+ s ago", record)
    assert "join_interruptibly" in record  # the node's main thread, from its stacks
    if any(started.alive() and "--rate" in started.args for started in ros2._started):
        assert re.search(r"`service call --rate 1` last printed [\d.]+ s ago", record), record
    assert node.alive()


def test_lifecycle_get_and_set(ros2: Ros2, node: Ros2Process) -> None:
    assert ros2.until("lifecycle", "get", NODE, expect=r"^active \[3\]$").returncode == 0
    try:
        _transition(ros2, node, "deactivate")
        assert ros2.until("lifecycle", "get", NODE, expect=r"\w").stdout == "inactive [2]\n"
    finally:
        _transition(ros2, node, "activate")
    assert ros2.until("lifecycle", "get", NODE, expect=r"\w").stdout == "active [3]\n"
    assert node.alive()


def test_param_get_set_dump(ros2: Ros2, node: Ros2Process) -> None:
    got = ros2.until("param", "get", NODE, "confidence_threshold", expect="^Double value is: ")
    before = got.stdout.split(": ")[1].strip()
    try:
        done = ros2.until(
            "param", "set", NODE, "confidence_threshold", "0.7",
            expect="^Set parameter successful$",
        )  # fmt: skip
        got = ros2.until("param", "get", NODE, "confidence_threshold", expect=r"\w")
        assert got.stdout == "Double value is: 0.7\n", got
        dump = ros2.until("param", "dump", NODE, expect=f"^{NODE}:$")
        params = yaml.safe_load(dump.stdout)[NODE]["ros__parameters"]
        assert params["confidence_threshold"] == 0.7
        assert (params["model"], params["checkpoint"], params["device"]) == ("tiny", "", "cpu")
        assert params["cameras"] == ["camera"] and params["autostart"] is True
        assert params["camera"]["image_topic"] == "camera/image_raw"
    finally:
        done = ros2("param", "set", NODE, "confidence_threshold", before)
    assert "Set parameter successful" in done.stdout, done


def test_the_anomaly_threshold_is_nan_until_a_number_is_set_and_nan_again(
    ros2: Ros2, node: Ros2Process
) -> None:
    """docs/node.md: NaN (each anomaly_method's own default) until a number is set; .nan
    returns to the method's default."""
    got = ros2.until("param", "get", NODE, "anomaly_threshold", expect=r"\w")
    assert got.stdout == "Double value is: nan\n", got
    try:
        ros2.until(
            "param", "set", NODE, "anomaly_threshold", "-0.3",
            expect="^Set parameter successful$",
        )  # fmt: skip
        got = ros2.until("param", "get", NODE, "anomaly_threshold", expect=r"\w")
        assert got.stdout == "Double value is: -0.3\n", got
    finally:
        done = ros2("param", "set", NODE, "anomaly_threshold", ".nan")
    assert "Set parameter successful" in done.stdout, done
    got = ros2.until("param", "get", NODE, "anomaly_threshold", expect=r"\w")
    assert got.stdout == "Double value is: nan\n", got


def test_param_set_of_a_static_parameter_is_refused_with_the_reason(
    ros2: Ros2, node: Ros2Process
) -> None:
    done = ros2.until(
        "param", "set", NODE, "model", "vit-b-16",
        expect=lambda r: "Setting parameter" in r.stdout + r.stderr,
    )  # fmt: skip
    said = (done.stdout + done.stderr).strip()  # ros2param prints a failure on stderr
    assert said.startswith(
        "Setting parameter failed: model takes effect at configure: deactivate and clean up first"
    ), said
    got = ros2.until("param", "get", NODE, "model", expect=r"\w")
    assert got.stdout == "String value is: tiny\n", got  # the value in force
    assert node.alive()


def test_a_static_array_parameter_through_the_documented_sequence(
    ros2: Ros2, node: Ros2Process
) -> None:
    """docs/node.md: deactivate, cleanup, `ros2 param set ... "[960, 540]"`, configure,
    activate (rclpy delivers the array as array.array; configure used to refuse it)."""
    ros2.until("lifecycle", "get", NODE, expect=r"^active \[3\]$")
    for value in ("[960, 540]", "[0, 0]"):  # the second puts the node back
        _transition(ros2, node, "deactivate")
        _transition(ros2, node, "cleanup")
        done = ros2("param", "set", NODE, "inference.test_scale", value)
        assert "Set parameter successful" in done.stdout, done
        _transition(ros2, node, "configure")
        _transition(ros2, node, "activate")
        got = ros2("param", "get", NODE, "inference.test_scale")
        assert got.stdout == f"Integer values are: {value}\n", got
    assert "configure failed" not in node.log()


def test_topic_echo_once_shows_the_label_info_and_a_live_threshold(
    ros2: Ros2, node: Ros2Process
) -> None:
    topic = "/camera/segmentation/label_info"
    echo = ros2("topic", "echo", "--once", topic, "vision_msgs/msg/LabelInfo", timeout=30)
    label_info = yaml.safe_load(echo.stdout.split("\n---", 1)[0])
    entries = [(c["class_id"], c["class_name"]) for c in label_info["class_map"]]
    assert entries[0] == (0, "road") and entries[18] == (18, "bicycle"), echo.stdout
    assert entries[19:] == [(255, "unlabeled")] and label_info["threshold"] == 0.0
    try:
        ros2.until(
            "param", "set", NODE, "confidence_threshold", "0.6",
            expect="^Set parameter successful$",
        )  # fmt: skip
        echo = ros2("topic", "echo", "--once", topic, "vision_msgs/msg/LabelInfo", timeout=30)
        assert yaml.safe_load(echo.stdout.split("\n---", 1)[0])["threshold"] == pytest.approx(0.6)
    finally:
        ros2("param", "set", NODE, "confidence_threshold", "0.0")


def test_topic_echo_once_shows_the_info_of_a_published_frame(ros, ros2, node) -> None:
    from sensor_msgs.msg import Image

    from test.ros.harness import camera_frame
    from vltseg_ros.ros.node.messages import array_to_image

    peer, env = ros
    assert env["ROS_DOMAIN_ID"] == ros2.domain  # the peer publishes where the node listens
    ros2.until("topic", "list", expect="^/camera/segmentation/info$")
    echo = ros2.start("topic", "echo", "--once", "/camera/segmentation/info")
    frame = camera_frame(64, 128)
    peer.wait_for_subscriber("/camera/image_raw", Image)
    deadline = time.monotonic() + 90
    while echo.alive() and time.monotonic() < deadline:
        peer.publish("/camera/image_raw", array_to_image(frame, "rgb8", peer.header("cli_cam")))
        time.sleep(0.5)
    assert echo.wait(timeout=10) == 0, echo.log()[-3000:]
    info = yaml.safe_load(echo.log().split("\n---", 1)[0])
    assert info["header"]["frame_id"] == "cli_cam"
    assert (info["camera"], info["model"], info["checkpoint"]) == ("camera", "tiny", "")
    assert (info["height"], info["width"]) == (64, 128)
    assert len(info["class_names"]) == 19


def _launch(cli: Ros2, *args: str) -> Ros2Process:
    return cli.start("launch", "vltseg_ros", *args)


def _stopped_cleanly(launch: Ros2Process, rc: int | None) -> None:
    """``rc``: of ``launch.interrupt()`` (SIGINT to ``ros2 launch``, as Ctrl-C): it stopped its
    node and exited with 0."""
    log = launch.log()
    assert rc == 0, log[-3000:]
    assert "finished cleanly" in log and "Traceback" not in log, log[-3000:]


def test_launch_package_form(launch_ros2: Ros2) -> None:
    launch = _launch(
        launch_ros2, "vltseg.launch.py", "image:=/front/image_raw",
        "camera_info:=/front/camera_info", "model:=tiny",
    )  # fmt: skip
    try:
        launch.wait_for(ACTIVE, timeout=120)
        info = node_info(
            launch_ros2.until("node", "info", NODE, expect="^    /front/image_raw: ").stdout
        )
    finally:
        rc = launch.interrupt(timeout=30)
    _stopped_cleanly(launch, rc)
    assert info["Subscribers"]["/front/image_raw"] == "sensor_msgs/msg/Image"
    assert info["Subscribers"]["/front/camera_info"] == "sensor_msgs/msg/CameraInfo"
    assert "/camera/image_raw" not in info["Subscribers"]
    for topic, kind in (
        ("mask", "sensor_msgs/msg/Image"),
        ("info", "vltseg_ros/msg/SegmentationInfo"),
    ):
        assert info["Publishers"][f"/camera/segmentation/{topic}"] == kind


def test_launch_multi_camera(launch_ros2: Ros2) -> None:
    launch = _launch(
        launch_ros2, "multi_camera.launch.py", "cameras:=front,rear", "namespace:=robot",
        "model:=tiny",
    )  # fmt: skip
    try:
        launch.wait_for(ACTIVE, timeout=120)
        info = node_info(
            launch_ros2.until(
                "node", "info", f"/robot{NODE}", expect="^    /rear/image_raw: "
            ).stdout
        )
    finally:
        rc = launch.interrupt(timeout=30)
    _stopped_cleanly(launch, rc)
    for camera in ("front", "rear"):
        assert info["Subscribers"][f"/{camera}/image_raw"] == "sensor_msgs/msg/Image"
        assert info["Subscribers"][f"/{camera}/camera_info"] == "sensor_msgs/msg/CameraInfo"
        assert info["Publishers"][f"/robot/{camera}/segmentation/mask"] == "sensor_msgs/msg/Image"
    assert re.search(r"\[robot\.vltseg_node\]: configured: cameras \['front', 'rear'\]",
                     launch.log())  # fmt: skip
