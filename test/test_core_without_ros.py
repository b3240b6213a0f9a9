"""The ML core imports and runs on a machine without ROS (rclpy made unimportable)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    ROS = ("rclpy", "rosidl_runtime_py", "sensor_msgs", "std_msgs", "diagnostic_msgs",
           "builtin_interfaces", "lifecycle_msgs", "cv_bridge", "rosbags", "launch", "launch_ros")

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ROS:
                raise ImportError(f"{name} is blocked: the core must not import ROS")
            return None

    sys.meta_path.insert(0, BlockRos())
    import vltseg_ros
    core = [m.name for m in pkgutil.walk_packages(vltseg_ros.__path__, "vltseg_ros.")
            if not m.name.startswith(("vltseg_ros.ros", "vltseg_ros.bag", "vltseg_ros.msg",
                                      "vltseg_ros.launching.actions"))]
    for name in core:
        importlib.import_module(name)
    import numpy as np
    from vltseg_ros.inference.predictor import Segmenter
    result = Segmenter.load("tiny").predict(np.zeros((64, 64, 3), np.uint8))
    assert result.labels.shape == (64, 64)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ROS)
    assert not loaded, loaded
    print("imported", len(core), "core modules")
    """
)


def test_core_imports_and_predicts_with_rclpy_blocked() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count = int(proc.stdout.split("imported ")[1].split()[0])
    assert count >= 10
