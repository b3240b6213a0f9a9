"""The bag tools work without rclpy or any ROS message package (only rosbags)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys, tempfile
    from pathlib import Path

    ROS = ("rclpy", "rosidl_runtime_py", "sensor_msgs", "std_msgs", "builtin_interfaces")

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ROS or name.startswith("vltseg_ros.msg"):
                raise ImportError(f"{name} is blocked: the bag tools must not import ROS")
            return None

    sys.meta_path.insert(0, BlockRos())
    import vltseg_ros.bag
    for module in pkgutil.walk_packages(vltseg_ros.bag.__path__, "vltseg_ros.bag."):
        importlib.import_module(module.name)
    from vltseg_ros.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        args = ["make-bag", "-", str(bag), "--synthetic", "2", "--synthetic-size", "64", "128"]
        assert main(args) == 0
        whole = ["--inference.mode", "whole", "--inference.whole-size", "64", "128"]
        args = ["bag-eval", str(bag), "--model", "tiny", *whole, "--out", tmp + "/out",
                "--write-bag", tmp + "/seg"]
        assert main(args) == 0
        assert main(["bag-eval", tmp + "/seg", "--mask-topic", "/camera/segmentation/mask"]) == 0
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ROS)
    assert not loaded, loaded
    print("ok")
    """
)


def test_bag_tools_run_with_ros_blocked() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
