"""The package's one layout rule: nothing outside ``vltseg_ros/ros/`` imports ROS.

ROS = rclpy, any ROS message / service package, the launch system, and the generated
``vltseg_ros.msg``. ``rosbags`` (a pure-Python bag library, no ROS installation) is not ROS:
``vltseg_ros/bag`` uses it. Checked two ways: every module outside ``ros/`` imports (and the
Segmenter predicts) with ROS made unimportable, and no import statement outside ``ros/``, also
one inside a function, names a ROS package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vltseg_ros"
ROS_PACKAGES = (
    "rclpy", "rosidl_runtime_py", "rosidl_parser", "rpyutils", "builtin_interfaces",
    "cv_bridge", "launch", "launch_ros", "launch_testing", "rosbag2_py", "tf2_ros",
    "message_filters", "image_transport", "ros2cli",
)  # fmt: skip


def is_ros(module: str) -> bool:
    """Whether an imported module name is ROS (message packages end in ``_msgs`` etc.)."""
    top = module.split(".")[0]
    return (
        top in ROS_PACKAGES
        or top.endswith(("_msgs", "_srvs", "_interfaces"))
        or module == "vltseg_ros.msg"
        or module.startswith("vltseg_ros.msg.")
    )


_SCRIPT = textwrap.dedent(
    f"""
    import importlib, importlib.abc, pkgutil, sys
    sys.path.insert(0, {str(REPO / "test")!r})
    from test_core_without_ros import is_ros

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if is_ros(name):
                raise ImportError(f"{{name}} is blocked: only vltseg_ros.ros may import ROS")
            return None

    sys.meta_path.insert(0, BlockRos())
    import vltseg_ros
    core = [m.name for m in pkgutil.walk_packages(vltseg_ros.__path__, "vltseg_ros.")
            if not m.name.startswith(("vltseg_ros.ros.", "vltseg_ros.msg"))
            and m.name != "vltseg_ros.ros"]
    for name in core:
        importlib.import_module(name)
    import numpy as np
    from vltseg_ros.inference.predictor import Segmenter
    result = Segmenter.load("tiny").predict(np.zeros((64, 64, 3), np.uint8))
    assert result.labels.shape == (64, 64)
    loaded = sorted(m for m in sys.modules if is_ros(m))
    assert not loaded, loaded
    print("imported", len(core), "modules")
    """
)


def test_everything_outside_ros_imports_and_predicts_with_ros_blocked() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count = int(proc.stdout.split("imported ")[1].split()[0])
    python_files = [p for p in PACKAGE.rglob("*.py") if "ros" not in p.relative_to(PACKAGE).parts]
    assert count >= len(python_files) - 1  # the package's own __init__ is not walked


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "vltseg_ros":  # from vltseg_ros import msg
                found += [(node.lineno, f"vltseg_ros.{a.name}") for a in node.names]
    return found


def test_no_import_statement_outside_ros_names_ros() -> None:
    outside = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "ros"]
    assert len(outside) > 100
    offending = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in outside
        for line, module in _imports(path)
        if is_ros(module)
    ]
    assert not offending, offending
    inside = [m for p in (PACKAGE / "ros").rglob("*.py") for _, m in _imports(p)]
    assert any(is_ros(m) for m in inside)  # the check sees ROS imports where they are allowed


def test_package_root_holds_only_init_errors_and_folders() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "errors.py"], loose
    names = [p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    twice = {n for n in names if names.count(n) > 1}
    # A subcommand's module in cli/ is named after what it runs (bag/evaluate.py, bag/make_bag.py);
    # config/options.py (the option tables) vs engines/options.py (the engines' options), and the
    # settings tables of inference/ (the Segmenter), ros/node/ and ros/replay/ (parameters) are
    # told apart by their folder. No other name twice: no two outputs.py or messages.py.
    assert twice <= {"evaluate.py", "make_bag.py", "options.py", "settings.py"}, twice
