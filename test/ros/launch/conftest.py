"""The ``launch_environment`` fixture: ``launch`` / ``launch_ros`` from the unmodified sources in
``../shared/ros2_launch`` (not on PyPI, not part of the project: without the folder the tests
that use it skip). Its README's recipe is followed: ``composition_interfaces`` (which launch_ros
imports) is built like the project's own messages, once per test run (the pytest-xdist workers
share the build), and the sources go on PYTHONPATH."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ROS2_LAUNCH = Path(os.environ.get("VLTSEG_ROS2_LAUNCH", REPO.parent / "shared" / "ros2_launch"))
PACKAGES = ("launch", "launch_ros", "launch_xml", "launch_yaml", "launch_testing")


def _build_composition_interfaces(prefix: Path, build: Path) -> None:
    venv = Path(sys.prefix)
    env = {
        **os.environ,
        "AMENT_PREFIX_PATH": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    configure = [
        "cmake", "-S", str(ROS2_LAUNCH / "composition_interfaces"), "-B", str(build), "-G",
        "Ninja", "-DBUILD_TESTING=OFF", f"-DCMAKE_PREFIX_PATH={venv}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}",
    ]  # fmt: skip
    for command in (
        configure,
        ["cmake", "--build", str(build)],
        ["cmake", "--install", str(build)],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (
            f"{command[:2]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def launch_environment(tmp_path_factory) -> dict[str, str]:
    """Environment in which ``launch`` / ``launch_ros`` import; skips without the sources."""
    if not (ROS2_LAUNCH / "launch_ros").is_dir():
        pytest.skip(f"the ROS 2 launch sources are not here ({ROS2_LAUNCH}; not part of the repo)")
    pytest.importorskip(
        "osrf_pycommon", reason="launch needs osrf-pycommon (requirements/dev.txt)"
    )
    if shutil.which("cmake", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("building composition_interfaces needs the venv's cmake (make setup)")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above every worker's own
    root = shared / "ros2_launch"
    root.mkdir(exist_ok=True)
    prefix, done = root / "install", root / "built"
    with (shared / "ros2_launch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker builds, the others wait and reuse it
        if not done.exists():
            _build_composition_interfaces(prefix, root / "build")
            done.touch()
    venv = Path(sys.prefix)
    site = next(prefix.glob("lib/python3*/site-packages"))
    paths = [str(ROS2_LAUNCH / name) for name in PACKAGES] + [str(site)]
    return {
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
        "LD_LIBRARY_PATH": os.pathsep.join(
            [str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH", "")]
        ),
        "AMENT_PREFIX_PATH": os.pathsep.join([str(prefix), str(venv)]),
        "PATH": "/usr/bin:/bin",  # no venv: the launchers must find their interpreter
    }
