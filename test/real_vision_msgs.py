"""The real vision_msgs package (4.1.1, ``../shared/ros2_vision_msgs``) for tests.

The venv built from the PyPI wheels has only the subset in ``interfaces/vision_msgs`` (same
fields, same type hashes). To check that what the venv publishes is what a ROS 2 installation's
vision_msgs receives, tests build the unmodified upstream package into a prefix of their own
(:func:`build_real_vision_msgs`; once per test session and pytest-xdist worker through the
``real_vision_msgs`` fixture of test/conftest.py) and subscribe with it in a subprocess that
imports that package, not the venv's (:func:`receive_label_info`).

Usage, e.g. for a node that publishes ``vision_msgs/msg/LabelInfo`` (transient local)::

    def test_label_info(real_vision_msgs, tmp_path):
        env = ros_test_environment(tmp_path)    # or test.ros.harness.ros_environment(tmp_path)
        ...start the publisher with env...
        got = receive_label_info(real_vision_msgs, "/front/label_info", env)
        assert got.messages[0]["class_map"][-1] == [255, "unlabeled"]
        assert got.publisher_hashes() == {LABEL_INFO_HASH}

Nothing here imports rclpy: the subscriber runs in its own process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VLTSEG_SHARED", ROOT.parent / "shared"))
"""The shared folder beside the checkout (``VLTSEG_SHARED`` overrides it)."""
SOURCE = SHARED / "ros2_vision_msgs" / "vision_msgs"
"""The unmodified upstream sources (CMakeLists.txt, package.xml, msg/)."""
PREFIX_VAR = "VLTSEG_VISION_MSGS_PREFIX"
"""Environment variable naming a prefix built before (reused as is, not rebuilt)."""

LABEL_INFO_HASH = "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783"
VISION_CLASS_HASH = "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a"
"""RIHS01 type hashes of vision_msgs 4.1.1 (rosidl, in share/vision_msgs/msg/*.json)."""


def site_packages(prefix: Path) -> Path:
    """Where the build puts the Python package ``vision_msgs`` under ``prefix``."""
    return prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _prefixes() -> list[str]:
    """Prefixes with the build dependencies: this venv (PyPI wheels) and any sourced ROS 2."""
    paths = [sys.prefix]
    for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        paths += [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    return list(dict.fromkeys(paths))


def ros_test_environment(tmp_path: Path) -> dict[str, str]:
    """A private ROS 2 graph for one test: its own ``ROS_DOMAIN_ID`` (per xdist worker), this
    machine only, logs and ROS home in ``tmp_path``."""
    from test.conftest import private_domain_id

    return {
        "ROS_DOMAIN_ID": private_domain_id(),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(tmp_path / "ros_log"),
        "ROS_HOME": str(tmp_path / "ros_home"),
    }


def _prepend(var: str, value: str, env: Mapping[str, str]) -> str:
    return os.pathsep.join([value, *(p for p in env.get(var, "").split(os.pathsep) if p)])


def build_real_vision_msgs(prefix: Path, build_dir: Path) -> Path:
    """Build ``../shared/ros2_vision_msgs`` into ``prefix`` with CMake (about a minute on two
    cores; the recipe of its README) and return ``prefix``.

    Skips the calling test when the sources, rclpy, cmake, a C compiler or the ROS build
    packages are missing; fails it when the build fails.
    """
    if not (SOURCE / "CMakeLists.txt").is_file():
        pytest.skip(
            f"the real vision_msgs sources are not available ({SOURCE} not found; they live in "
            "../shared, outside the repository: set VLTSEG_SHARED to the folder that has "
            "ros2_vision_msgs)"
        )
    pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")
    bin_dir = str(Path(sys.executable).parent)
    cmake = shutil.which("cmake", path=bin_dir) or shutil.which("cmake")
    if cmake is None or shutil.which("cc") is None:
        pytest.skip("cmake or a C compiler is missing: cannot build vision_msgs")
    prefixes = _prefixes()
    for pkg in ("rosidl_default_generators", "std_msgs", "geometry_msgs"):
        if not any((Path(p) / f"share/{pkg}/cmake/{pkg}Config.cmake").is_file() for p in prefixes):
            pytest.skip(f"no {pkg} CMake package in this venv or AMENT_PREFIX_PATH")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    configure = [cmake, "-S", str(SOURCE), "-B", str(build_dir), "-DBUILD_TESTING=OFF"]
    if shutil.which("ninja", path=bin_dir) or shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    configure += [
        f"-DCMAKE_PREFIX_PATH={';'.join(prefixes)}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}",
    ]
    steps = [
        configure,
        [cmake, "--build", str(build_dir)],
        [cmake, "--install", str(build_dir)],
    ]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(
                f"building the real vision_msgs failed: {' '.join(step)}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
    if not (site_packages(prefix) / "vision_msgs" / "msg" / "__init__.py").is_file():
        pytest.fail(f"the vision_msgs build installed no Python package in {prefix}")
    return prefix


def real_vision_msgs_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prefix of ``VLTSEG_VISION_MSGS_PREFIX`` when set, else a build in a temporary folder
    of this pytest process (each xdist worker has its own)."""
    if os.environ.get(PREFIX_VAR):
        prefix = Path(os.environ[PREFIX_VAR]).resolve()
        if not (site_packages(prefix) / "vision_msgs" / "msg" / "__init__.py").is_file():
            pytest.fail(f"{PREFIX_VAR}={prefix} holds no built vision_msgs")
        return prefix
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = tmp_path_factory.mktemp(f"real_vision_msgs_{worker}")
    return build_real_vision_msgs(base / "install", base / "build")


def real_vision_msgs_environment(prefix: Path, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the real vision_msgs in ``prefix`` first: Python package, type-support
    libraries (read by dlopen at process start, hence for a new process only) and ament index.
    The venv's subset (site-packages, ``<venv>/lib``) comes after it and is not used."""
    return {
        **env,
        "PYTHONPATH": _prepend("PYTHONPATH", str(site_packages(prefix)), env),
        "LD_LIBRARY_PATH": _prepend("LD_LIBRARY_PATH", str(prefix / "lib"), env),
        "AMENT_PREFIX_PATH": _prepend("AMENT_PREFIX_PATH", str(prefix), env),
    }


@dataclass
class ReceivedLabelInfo:
    """What :func:`receive_label_info`'s subscriber saw."""

    module: str
    """``vision_msgs.__file__`` in the subscriber (under the real package's prefix)."""
    libraries: list[str]
    """The ``libvision_msgs__*.so`` files the subscriber process had loaded."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Each message received, in order: ``frame_id``, ``stamp_ns``, ``class_map`` (a list of
    ``[class_id, class_name]``) and ``threshold``."""
    publishers: list[dict[str, str]] = field(default_factory=list)
    """The graph's publishers of the topic: ``node`` (namespace + name), ``type``, ``hash``."""
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    """The same for the subscriptions (the subscriber's own among them)."""
    timed_out: bool = False
    """Fewer messages than asked for arrived within the timeout."""

    def publisher_hashes(self) -> set[str]:
        return {p["hash"] for p in self.publishers}

    def subscription_hashes(self) -> set[str]:
        return {s["hash"] for s in self.subscriptions}


_SUBSCRIBER = r"""
import json, sys, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
import vision_msgs
from vision_msgs.msg import LabelInfo

topic, count, timeout, depth = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rclpy.init()
node = rclpy.create_node("real_vision_msgs_subscriber")
qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
received = []
node.create_subscription(LabelInfo, topic, received.append, qos)
deadline = time.monotonic() + timeout
while len(received) < count and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
topic = node.resolve_topic_name(topic)

def endpoints(infos):
    return [{"node": f"{i.node_namespace.rstrip('/')}/{i.node_name}", "type": i.topic_type,
             "hash": str(i.topic_type_hash)} for i in infos]

result = {
    "module": vision_msgs.__file__,
    "libraries": sorted({p for p in open("/proc/self/maps").read().split()
                         if "/libvision_msgs__" in p}),
    "messages": [{"frame_id": m.header.frame_id,
                  "stamp_ns": m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec,
                  "class_map": [[c.class_id, c.class_name] for c in m.class_map],
                  "threshold": m.threshold} for m in received],
    "publishers": endpoints(node.get_publishers_info_by_topic(topic)),
    "subscriptions": endpoints(node.get_subscriptions_info_by_topic(topic)),
    "timed_out": len(received) < count,
}
node.destroy_node()
rclpy.shutdown()
print(json.dumps(result))
"""


def receive_label_info(
    prefix: Path,
    topic: str,
    env: Mapping[str, str],
    *,
    count: int = 1,
    timeout: float = 60.0,
    depth: int = 1,
) -> ReceivedLabelInfo:
    """Subscribe to ``vision_msgs/msg/LabelInfo`` on ``topic`` in a new process that imports
    the real vision_msgs of ``prefix`` (from the ``real_vision_msgs`` fixture), and return what
    it received.

    ``env``: the ROS environment of the publisher (``ROS_DOMAIN_ID``,
    ``ROS_AUTOMATIC_DISCOVERY_RANGE``, ``ROS_LOG_DIR`` ...), laid over this process's. QoS:
    reliable, transient local, keep last ``depth``, so a message published (latched) before the
    subscriber starts still arrives. Waits for ``count`` messages, at most ``timeout`` seconds
    (``timed_out`` tells), then reads the graph's publishers and subscriptions of the topic
    with their type hashes. Blocks; runs ``sys.executable``.

    Raises:
        AssertionError: the subscriber process failed (its output in the message).
    """
    full_env = real_vision_msgs_environment(prefix, {**os.environ, **env})
    done = subprocess.run(
        [sys.executable, "-c", _SUBSCRIBER, topic, str(count), str(timeout), str(depth)],
        env=full_env,
        cwd=prefix,  # sys.path[0]: nothing named vision_msgs there
        capture_output=True,
        text=True,
        timeout=timeout + 120,
        check=False,
    )
    assert done.returncode == 0, (
        f"the real-vision_msgs subscriber failed ({done.returncode}):\n"
        f"{done.stdout}\n{done.stderr}"
    )
    return ReceivedLabelInfo(**json.loads(done.stdout.strip().splitlines()[-1]))
