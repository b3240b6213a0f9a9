"""vision_msgs/msg/LabelInfo in the venv: the subset in interfaces/vision_msgs (PyPI wheels) or a
sourced distribution's package, wire-compatible with vision_msgs 4.1.1.

The subset is built by scripts/setup_env.sh into the venv; these tests check that it has
upstream's fields and type hashes (rosidl's JSON, the ROS graph), that it imports and publishes
in a fresh process, that colcon and rosdep never see it, and that a subscriber built against the
real vision_msgs (../shared/ros2_vision_msgs, skipped when absent) receives what the venv
publishes. The rosbags side (typestore, label_info_cdr) is in test/bag/test_bag_io.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from test.real_vision_msgs import (
    LABEL_INFO_HASH,
    SOURCE,
    VISION_CLASS_HASH,
    receive_label_info,
    ros_test_environment,
)

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "interfaces" / "vision_msgs"
HASHES = {"LabelInfo": LABEL_INFO_HASH, "VisionClass": VISION_CLASS_HASH}
FIELDS = {
    "VisionClass": ["uint16 class_id", "string class_name"],
    "LabelInfo": [
        "std_msgs/Header header",
        "vision_msgs/VisionClass[] class_map",
        "float32 threshold",
    ],
}
SUBSET_STAMP = Path(sys.prefix) / ".vltseg-vision-msgs-stamp"
"""Written by scripts/setup_env.sh when it built the subset into this venv."""
CITYSCAPES_LABELS = [
    *enumerate(
        ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
         "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
         "bus", "train", "motorcycle", "bicycle")
    ),
    (255, "unlabeled"),
]  # fmt: skip


def _fields(path: Path) -> list[str]:
    """The declarations of a .msg file: comments and blank lines dropped, spaces normalized."""
    lines = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return [" ".join(words) for words in lines if words]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_subset_declares_upstreams_fields(name: str) -> None:
    assert _fields(SUBSET / "msg" / f"{name}.msg") == FIELDS[name]
    upstream = SOURCE / "msg" / f"{name}.msg"
    if upstream.is_file():  # ../shared/ros2_vision_msgs: vision_msgs 4.1.1 as released
        assert _fields(upstream) == FIELDS[name]


def test_subset_is_never_built_or_installed_with_the_package() -> None:
    assert (SUBSET / "COLCON_IGNORE").is_file()
    assert {p.name for p in (SUBSET / "msg").iterdir()} == {"LabelInfo.msg", "VisionClass.msg"}
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "interfaces/" not in cmake and not re.search(r"find_package\(\s*vision_msgs", cmake)
    package = ET.parse(ROOT / "package.xml").getroot()
    assert "vision_msgs" in {e.text for e in package.findall("exec_depend")}
    assert "vision_msgs" not in {
        e.text for tag in ("depend", "build_depend") for e in package.findall(tag)
    }
    # pip installs the .msg text for the bag tools beside the package's own, not as vision_msgs
    assert '"share/vltseg_ros/interfaces/vision_msgs/msg"' in (ROOT / "setup.py").read_text()


def test_colcon_and_rosdep_do_not_see_the_subset(tmp_path: Path) -> None:
    """rosdep (catkin_pkg) and colcon skip folders with COLCON_IGNORE: neither builds the
    subset nor takes it for the vision_msgs that package.xml depends on."""
    packages = pytest.importorskip("catkin_pkg.packages", reason="no catkin_pkg (make setup)")
    assert [p.name for p in packages.find_packages(str(ROOT)).values()] == ["vltseg_ros"]
    assert packages.find_packages(str(ROOT / "interfaces")) == {}
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent))
    if colcon is not None:
        listed = subprocess.run(
            [colcon, "--log-base", str(tmp_path / "log"), "list", "--names-only",
             "--base-paths", str(ROOT / "interfaces")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
            cwd=tmp_path,
            env={**os.environ, "COLCON_HOME": str(tmp_path / "colcon_home")},
        )  # fmt: skip
        assert listed.stdout.split() == []


def _vision_msgs_share() -> Path:
    pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("vision_msgs"))


@pytest.mark.parametrize("name", sorted(HASHES))
def test_generated_type_hashes_are_upstreams(name: str) -> None:
    share = _vision_msgs_share()
    if SUBSET_STAMP.is_file():  # the PyPI-wheel venv: the subset's build, in the venv
        assert share == Path(sys.prefix) / "share" / "vision_msgs"
    generated = json.loads((share / "msg" / f"{name}.json").read_text())
    assert generated["type_hashes"][0] == {
        "type_name": f"vision_msgs/msg/{name}",
        "hash_string": HASHES[name],
    }


_PROBE = """
import json, sys, rclpy
import vision_msgs
from rclpy.serialization import deserialize_message, serialize_message
from vision_msgs.msg import LabelInfo, VisionClass

info = LabelInfo(threshold=0.25, class_map=[VisionClass(class_id=65535, class_name="unlabeled")])
info.header.frame_id = "cam"
rclpy.init()
node = rclpy.create_node("vision_msgs_probe")
node.create_publisher(LabelInfo, "label_info", 1).publish(info)
node.create_publisher(VisionClass, "vision_class", 1)
print(json.dumps({
    "module": vision_msgs.__file__,
    "roundtrip": deserialize_message(serialize_message(info), LabelInfo) == info,
    "hashes": {name: [str(i.topic_type_hash) for i in node.get_publishers_info_by_topic(topic)]
               for name, topic in (("LabelInfo", "/label_info"),
                                   ("VisionClass", "/vision_class"))},
}))
rclpy.shutdown()
"""


def test_fresh_process_imports_publishes_and_the_graph_has_upstreams_hashes(
    tmp_path: Path,
) -> None:
    """In a new process of this venv (no environment set up by hand): import, serialize,
    publish; the ROS graph reports upstream's type hashes for both types."""
    pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**os.environ, **ros_test_environment(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["roundtrip"]
    assert result["hashes"] == {name: [value] for name, value in HASHES.items()}
    if SUBSET_STAMP.is_file():
        site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        assert Path(result["module"]).is_relative_to(site / "site-packages" / "vision_msgs")


_PUBLISHER = """
import json, sys, time, rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
import vision_msgs
from vision_msgs.msg import LabelInfo, VisionClass

topic, classes = sys.argv[1], json.loads(sys.argv[2])
rclpy.init()
node = rclpy.create_node("venv_label_info_publisher")
qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
publisher = node.create_publisher(LabelInfo, topic, qos)
info = LabelInfo(threshold=0.5,
                 class_map=[VisionClass(class_id=i, class_name=n) for i, n in classes])
info.header.frame_id = "camera_front"
info.header.stamp.sec, info.header.stamp.nanosec = 1_700_000_000, 5
publisher.publish(info)
print(json.dumps({"module": vision_msgs.__file__}), flush=True)
deadline = time.monotonic() + 300  # the test closes stdin; never outlive it for long
import select
while time.monotonic() < deadline and not select.select([sys.stdin], [], [], 0)[0]:
    rclpy.spin_once(node, timeout_sec=0.1)
rclpy.shutdown()
"""


def test_real_vision_msgs_receives_the_label_info_the_venv_publishes(
    real_vision_msgs: Path, tmp_path: Path
) -> None:
    """Publisher: this venv's vision_msgs (the subset with the PyPI wheels), latched; subscriber:
    the real vision_msgs 4.1.1, started after the publish. All 20 entries and the threshold
    arrive, and both ends have the same type hash in the graph."""
    env = ros_test_environment(tmp_path)
    publisher = subprocess.Popen(
        [sys.executable, "-c", _PUBLISHER, "/camera_front/label_info",
         json.dumps(CITYSCAPES_LABELS)],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        started = publisher.stdout.readline()
        assert started, f"the publisher exited ({publisher.wait()}) before publishing"
        publisher_module = Path(json.loads(started)["module"])
        got = receive_label_info(real_vision_msgs, "/camera_front/label_info", env)
    finally:
        publisher.stdin.close()
        try:
            publisher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            publisher.kill()

    # the subscriber used the real package, the publisher did not
    assert Path(got.module).is_relative_to(real_vision_msgs)
    assert got.libraries and all(Path(p).is_relative_to(real_vision_msgs) for p in got.libraries)
    assert not publisher_module.is_relative_to(real_vision_msgs)
    if SUBSET_STAMP.is_file():
        assert publisher_module.is_relative_to(sys.prefix)

    assert not got.timed_out and len(got.messages) == 1
    message = got.messages[0]
    assert message["class_map"] == [list(entry) for entry in CITYSCAPES_LABELS]
    assert len(message["class_map"]) == 20
    assert message["threshold"] == 0.5
    assert message["frame_id"] == "camera_front"
    assert message["stamp_ns"] == 1_700_000_000_000_000_005
    assert {p["type"] for p in got.publishers + got.subscriptions} == {"vision_msgs/msg/LabelInfo"}
    assert got.publisher_hashes() == got.subscription_hashes() == {LABEL_INFO_HASH}
    assert len(got.publishers) == 1 and len(got.subscriptions) == 1
