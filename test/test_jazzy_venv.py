"""A second venv of the checkout (.venv-jazzy from `ROS_DISTRO=jazzy make setup`).

scripts/setup_env.sh links the generated message modules into the source tree for .venv only
(test_packaging.py checks those links); another venv of the checkout, built against other ROS 2
libraries, imports the modules of its own message build through a start-up hook. These tests
run in such a venv (`make test-jazzy`) and are skipped in .venv.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = Path(sys.prefix) / "lib" / "vltseg_ros_generated_py" / "vltseg_ros"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("_vltseg_ros_venv_msg") is None,
    reason="runs in a second venv of the checkout (.venv-jazzy: make test-jazzy)",
)


def test_the_messages_are_this_venvs_own_build() -> None:
    import rclpy
    from rclpy.serialization import deserialize_message, serialize_message

    import vltseg_ros
    import vltseg_ros.msg as msg

    assert Path(vltseg_ros.__file__).parent == ROOT / "vltseg_ros"  # the editable sources
    assert Path(msg.__file__).parent == GENERATED / "msg"
    assert Path(rclpy.__file__).is_relative_to(sys.prefix)
    info = msg.SegmentationInfo(camera="front", class_fraction=[0.25, 0.75], batch_frames=2)
    info.header.frame_id = "cam0"
    back = deserialize_message(serialize_message(info), msg.SegmentationInfo)
    assert back == info and back.class_fraction.tolist() == [0.25, 0.75]
    type_support = sys.modules["vltseg_ros.vltseg_ros_s__rosidl_typesupport_c"]
    assert Path(type_support.__file__).parent == GENERATED


def test_the_source_tree_links_are_left_to_dot_venv() -> None:
    venv = Path(sys.prefix).resolve()
    links = [path for path in (ROOT / "vltseg_ros").iterdir() if path.is_symlink()]
    assert not [link for link in links if link.resolve().is_relative_to(venv)]


def test_a_vltseg_ros_from_elsewhere_keeps_its_own_messages(tmp_path: Path) -> None:
    # as a colcon install prefix on PYTHONPATH has it: the hook only serves the checkout
    (tmp_path / "vltseg_ros" / "msg").mkdir(parents=True)
    (tmp_path / "vltseg_ros" / "__init__.py").write_text("")
    (tmp_path / "vltseg_ros" / "msg" / "__init__.py").write_text("WHERE = 'elsewhere'\n")
    result = subprocess.run(
        [sys.executable, "-c", "import vltseg_ros.msg as m; print(m.WHERE)"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "elsewhere"
