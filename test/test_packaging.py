"""The ROS 2 package: metadata, the messages in the venv, and the package built with colcon."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from test.conftest import private_domain_id

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vltseg_ros"
NODE_ENTRY_POINT = "vltseg_node = vltseg_ros.ros.node.vltseg_node:main"


def _setup_py_keywords() -> dict[str, object]:
    """Literal keyword arguments of the ``setup(...)`` call in setup.py (names resolved)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup"
    ]
    assert len(calls) == 1, "setup.py must call setup() exactly once"
    keywords: dict[str, object] = {}
    for kw in calls[0].keywords:
        if isinstance(kw.value, ast.Name) and kw.value.id in constants:
            keywords[kw.arg] = constants[kw.value.id]
        else:
            # not a literal (e.g. find_namespace_packages(...)): left out
            with contextlib.suppress(ValueError):
                keywords[kw.arg] = ast.literal_eval(kw.value)
    return keywords


def _package_xml() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _deps(root: ET.Element, *tags: str) -> set[str]:
    return {e.text for tag in tags for e in root.findall(tag)}


def test_package_xml_matches_setup_py() -> None:
    root = _package_xml()
    setup_kw = _setup_py_keywords()

    assert root.tag == "package"
    assert root.get("format") == "3"
    assert root.findtext("name") == PACKAGE == setup_kw["name"]
    assert root.findtext("version") == setup_kw["version"]
    import vltseg_ros

    assert vltseg_ros.__version__ == setup_kw["version"]
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("license") == "Apache-2.0"
    assert {"ament_cmake", "ament_cmake_python"} <= _deps(root, "buildtool_depend")
    exec_deps = _deps(root, "exec_depend", "depend")
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "lifecycle_msgs"} <= exec_deps
    assert NODE_ENTRY_POINT in setup_kw["entry_points"]["console_scripts"]


def _ros_imports() -> set[str]:
    """Top-level modules imported by the package and the launch files that are ROS packages:
    what the ros-* wheels installed (their distributions are named ros-<package>)."""
    import ast
    from importlib.metadata import packages_distributions

    found = set()
    for path in [*(ROOT / PACKAGE).rglob("*.py"), *(ROOT / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    distributions = packages_distributions()
    return {m for m in found if any(d.startswith("ros-") for d in distributions.get(m, ()))}


def test_every_ros_package_imported_is_a_run_dependency() -> None:
    """rosdep installs what package.xml names: each ROS package the code or the launch files
    import (launch / launch_ros have no wheel here: named explicitly)."""
    exec_deps = _deps(_package_xml(), "exec_depend", "depend")
    imported = _ros_imports() | {"launch", "launch_ros"}
    assert {"rclpy", "rcl_interfaces", "rosgraph_msgs"} <= imported  # the scan works
    assert imported - {"vltseg_ros"} <= exec_deps


def test_messages_are_declared_for_rosidl() -> None:
    """package.xml and CMakeLists.txt generate every msg/*.msg, with its dependencies."""
    root = _package_xml()
    assert "rosidl_default_generators" in _deps(root, "buildtool_depend")
    assert "std_msgs" in _deps(root, "depend")  # used by the messages: build and run time
    assert "rosidl_default_runtime" in _deps(root, "exec_depend")
    assert "rosidl_interface_packages" in _deps(root, "member_of_group")

    cmake = (ROOT / "CMakeLists.txt").read_text()
    call = re.search(r"rosidl_generate_interfaces\((.*?)\)", cmake, re.DOTALL)
    assert call, "CMakeLists.txt does not call rosidl_generate_interfaces"
    listed = set(re.findall(r'"(msg/[^"]+\.msg)"', call.group(1)))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "msg").glob("*.msg")}
    assert listed == on_disk, f"CMakeLists.txt generates {listed}, msg/ holds {on_disk}"
    assert re.search(r"DEPENDENCIES\s+std_msgs", call.group(1))


def test_ros2_run_launcher() -> None:
    launcher = ROOT / "scripts" / "vltseg_node"
    assert os.access(launcher, os.X_OK), f"{launcher} is not executable"
    text = launcher.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    assert "from vltseg_ros.ros.node.vltseg_node import main" in text
    compile(text, str(launcher), "exec")


# --- The messages in this venv (scripts/setup_env.sh) ----------------------------------------


def _venv_messages():
    """The generated message module of this venv; skips where it is not built."""
    pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")
    if not (ROOT / PACKAGE / "msg" / "__init__.py").is_file():
        pytest.skip("the messages are not built into this venv (run `make setup`)")
    import vltseg_ros.msg

    return vltseg_ros.msg


def test_venv_messages_sit_beside_the_editable_sources() -> None:
    msg = _venv_messages()
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import ColorRGBA

    import vltseg_ros

    # One package, from the source tree: no second copy in site-packages.
    assert Path(vltseg_ros.__file__).parent == ROOT / PACKAGE
    assert Path(msg.__file__).parent == ROOT / PACKAGE / "msg"
    assert not (Path(sysconfig.get_paths()["purelib"]) / PACKAGE).exists()

    info = msg.SegmentationInfo(
        camera="front",
        class_names=["road", "car"],
        class_fraction=[0.25, 0.75],
        inference_latency=0.125,
        batch_frames=2,
    )
    info.header.frame_id = "cam0"
    back = deserialize_message(serialize_message(info), msg.SegmentationInfo)
    assert back == info and back.class_fraction.tolist() == [0.25, 0.75]
    classes = msg.ClassSet(name="cityscapes", names=["road"], colors=[ColorRGBA(r=0.5, a=1.0)])
    assert deserialize_message(serialize_message(classes), msg.ClassSet) == classes


def test_venv_share_folders_link_every_source_file() -> None:
    """share/vltseg_ros/config and launch in the venv are real folders (subfolders too) with a
    link to each source file, as colcon --symlink-install lays them out: `ros2 launch vltseg_ros
    <file>` searches the share folder with os.walk, which does not enter a link to a folder."""
    share = Path(sys.prefix) / "share" / PACKAGE
    if not (share / "package.xml").is_file():
        pytest.skip("the package is not built into this venv (run `make setup`)")
    walked_share = {  # what ros2launch's search sees
        (Path(directory) / name).relative_to(share)
        for directory, _, names in os.walk(share)
        if "__pycache__" not in Path(directory).parts
        for name in names
    }
    for folder in ("config", "launch"):
        sources = {
            path.relative_to(ROOT)
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        }
        walked = {path for path in walked_share if path.parts[0] == folder}
        assert walked == sources, f"share/{PACKAGE}/{folder} is out of date: run `make setup`"
        for path in walked:
            assert (share / path).is_symlink(), f"{share / path} is no link"
            assert (share / path).resolve() == (ROOT / path).resolve()


_SUBSCRIBER = """
import json, sys, time, rclpy
from vltseg_ros.msg import ClassSet, SegmentationInfo
rclpy.init()
node = rclpy.create_node("packaging_test_sub")
got = {}
node.create_subscription(SegmentationInfo, "info", lambda m: got.setdefault("info", m), 10)
node.create_subscription(ClassSet, "classes", lambda m: got.setdefault("classes", m), 10)
print("ready", flush=True)
deadline = time.monotonic() + 20
while len(got) < 2 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
info, classes = got.get("info"), got.get("classes")
print(json.dumps(info and classes and [info.camera, info.class_fraction.tolist(), classes.names]))
"""


def test_venv_messages_cross_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subprocess started with sys.executable receives both messages from this process."""
    msg = _venv_messages()
    import rclpy

    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setenv("ROS_DOMAIN_ID", private_domain_id(50, 50))  # apart from the node tests
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    child = subprocess.Popen(
        [sys.executable, "-c", _SUBSCRIBER], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    context = rclpy.Context()
    try:
        assert child.stdout.readline().strip() == "ready"
        rclpy.init(context=context)
        node = rclpy.create_node("packaging_test_pub", context=context)
        info_pub = node.create_publisher(msg.SegmentationInfo, "info", 10)
        classes_pub = node.create_publisher(msg.ClassSet, "classes", 10)
        deadline = time.monotonic() + 30
        while min(info_pub.get_subscription_count(), classes_pub.get_subscription_count()) < 1:
            assert time.monotonic() < deadline, "the subscriber process never matched"
            time.sleep(0.05)
        info = msg.SegmentationInfo(camera="front", class_fraction=[0.5, 0.5])
        classes = msg.ClassSet(name="cityscapes", names=["road", "car"])
        while True:  # until the child has both (a match can precede the reader being ready)
            info_pub.publish(info)
            classes_pub.publish(classes)
            try:
                out, _ = child.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "the subscriber process received nothing"
        assert json.loads(out.strip().splitlines()[-1]) == ["front", [0.5, 0.5], ["road", "car"]]
    finally:
        if child.poll() is None:
            child.kill()
        rclpy.try_shutdown(context=context)


# --- The package built by colcon in a workspace ------------------------------------------------


def _ament_prefixes() -> list[str]:
    """Prefixes that may hold ament_cmake: this venv (PyPI wheels) and any sourced ROS 2."""
    candidates = [sys.prefix]
    for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):
        candidates += [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    return list(dict.fromkeys(candidates))


def _python_install_dir(prefix: Path) -> Path:
    """Where colcon / ament_cmake_python put pure Python packages under ``prefix``."""
    schemes = sysconfig.get_scheme_names()
    kwargs: dict = {"vars": {"base": str(prefix)}}
    if "deb_system" in schemes or "osx_framework_library" in schemes:
        kwargs["scheme"] = "posix_prefix"
    elif "rpm_prefix" in schemes:
        kwargs["scheme"] = "rpm_prefix"
    return Path(sysconfig.get_path("purelib", **kwargs))


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _copy_filter(directory: str, names: list[str]) -> set[str]:
    """The package sources only: no venv (whatever its name), VCS data, build trees, caches.

    A copy rather than a link to the repository: with the venv inside the repository, CMake
    would refuse to export targets whose include directories (the venv's numpy) lie in the
    source directory.
    """
    skip = {".git", "__pycache__", ".pytest_cache", ".ruff_cache"}
    if Path(directory) == ROOT:
        skip |= {"build", "install", "log", "out"}
    return {
        n
        for n in names
        if n in skip or n.endswith(".egg-info") or Path(directory, n, "pyvenv.cfg").is_file()
    }


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``colcon build`` of the repository as ``src/vltseg_ros``; returns the install base."""
    bin_dir = str(Path(sys.executable).parent)
    tools = {t: shutil.which(t, path=bin_dir) or shutil.which(t) for t in ("colcon", "cmake")}
    for tool, path in tools.items():
        if path is None:
            pytest.skip(
                f"{tool} is not installed (run `make setup`, or source a ROS 2 installation)"
            )
    if shutil.which("cc") is None or shutil.which("bash") is None:
        pytest.skip("no C compiler or no bash: cannot build and source the package")
    prefixes = _ament_prefixes()
    for pkg in ("ament_cmake", "rosidl_default_generators"):
        if not any((Path(p) / f"share/{pkg}/cmake/{pkg}Config.cmake").is_file() for p in prefixes):
            pytest.skip(
                f"no {pkg} CMake package in this venv or AMENT_PREFIX_PATH "
                "(run `make setup`, or source a ROS 2 installation)"
            )

    ws = tmp_path_factory.mktemp("colcon_ws")
    shutil.copytree(ROOT, ws / "src" / PACKAGE, symlinks=True, ignore=_copy_filter)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["AMENT_PREFIX_PATH"] = env["CMAKE_PREFIX_PATH"] = os.pathsep.join(prefixes)
    env["COLCON_HOME"] = str(ws / "colcon_home")  # no user defaults.yaml
    cmd = [tools["colcon"], "--log-base", "log", "build", "--base-paths", "src"]
    cmd += ["--event-handlers", "desktop_notification-", "--cmake-args", "-DBUILD_TESTING=OFF"]
    _run([*cmd, f"-DPython3_EXECUTABLE={sys.executable}"], env, ws)
    return ws / "install"


def test_colcon_installs_package(colcon_install: Path) -> None:
    prefix = colcon_install / PACKAGE  # colcon's default isolated layout
    pkg_dir = _python_install_dir(prefix) / PACKAGE
    # the venv's vision_msgs subset (interfaces/vision_msgs, COLCON_IGNORE) is not a package here
    assert sorted(p.name for p in colcon_install.iterdir() if p.is_dir()) == [PACKAGE]
    assert not (prefix / "share" / "vision_msgs").exists()
    assert (pkg_dir / "errors.py").is_file(), f"errors.py not installed under {pkg_dir}"
    src_configs = ROOT / PACKAGE / "config"
    yamls = sorted(p.relative_to(src_configs) for p in src_configs.rglob("*.yaml"))
    assert len(yamls) >= 10, "the source tree has no model / class-set / run configs"
    for rel in yamls:
        assert (pkg_dir / "config" / rel).is_file(), f"config/{rel} not installed"
    # The generated modules are byte-compiled at install time; nothing else may bring .pyc files.
    pycache = {p.parent.parent.relative_to(pkg_dir) for p in pkg_dir.rglob("__pycache__/*.pyc")}
    assert pycache <= {Path("."), Path("msg")}, f"__pycache__ copied from the source: {pycache}"
    assert not list(pkg_dir.glob("__pycache__/errors.*"))
    assert not [p for p in pkg_dir.rglob("*") if p.is_symlink()], "links of the venv installed"
    for name in ("SegmentationInfo", "ClassSet"):
        assert (prefix / "share" / PACKAGE / "msg" / f"{name}.msg").is_file()
    index = prefix / "share/ament_index/resource_index"
    assert (index / "rosidl_interfaces" / PACKAGE).is_file()
    assert (index / "packages" / PACKAGE).is_file()
    assert (prefix / "share" / PACKAGE / "package.xml").is_file()
    assert (prefix / "share" / PACKAGE / "config" / "fastdds_large_data.xml").is_file()
    hook = prefix / "share" / PACKAGE / "environment" / "pythonpath.dsv"
    assert hook.is_file(), "no PYTHONPATH hook: `source install/setup.bash` would not find it"
    node = prefix / "lib" / PACKAGE / "vltseg_node"
    assert node.is_file() and os.access(node, os.X_OK), f"{node} missing or not executable"


def _run_installed(install: Path, code: str, tmp_path: Path) -> dict:
    """Run Python ``code`` (printing JSON last) after ``source install/setup.bash``."""
    env = dict(os.environ, ROS_LOG_DIR=str(tmp_path / "log"), PYTHONDONTWRITEBYTECODE="1")
    script = f'source "{install}/setup.bash" && exec "{sys.executable}" -c "$0"'
    # cwd: not the repository, whose sources would otherwise be importable from '' on sys.path
    out = _run(["bash", "-c", script, code], env, tmp_path).stdout
    return json.loads(out.strip().splitlines()[-1])


_IMPORT_PROBE = """
import json, sys
import vltseg_ros, vltseg_ros.config.model_config
from vltseg_ros.msg import ClassSet, SegmentationInfo
from rclpy.serialization import deserialize_message, serialize_message
from vltseg_ros.ros.node.transport import large_data_profile_path

info = SegmentationInfo(camera="front", class_fraction=[0.25, 0.75])
same = deserialize_message(serialize_message(info), SegmentationInfo) == info  # loads the libs
same = same and deserialize_message(serialize_message(ClassSet()), ClassSet) == ClassSet()
maps = open("/proc/self/maps").read().split()
print(json.dumps({
    "roundtrip": same,
    "modules": [vltseg_ros.__file__, vltseg_ros.config.model_config.__file__,
                sys.modules[SegmentationInfo.__module__].__file__,
                sys.modules["vltseg_ros.vltseg_ros_s__rosidl_typesupport_c"].__file__,
                str(large_data_profile_path())],
    "libs": sorted({p for p in maps if "/libvltseg_ros__" in p}),
}))
"""


def test_colcon_install_imports_from_install_prefix(colcon_install: Path, tmp_path: Path) -> None:
    result = _run_installed(colcon_install, _IMPORT_PROBE, tmp_path)
    assert result["roundtrip"]
    prefix = (colcon_install / PACKAGE).resolve()
    for path in result["modules"]:
        assert Path(path).resolve().is_relative_to(prefix), f"{path} is not from {prefix}"
    assert result["libs"], "no vltseg_ros type-support library was loaded"
    for path in result["libs"]:  # not the venv's copies of the type-support libraries
        assert Path(path).resolve().is_relative_to(prefix / "lib"), f"{path} loaded"


def test_colcon_install_imports_node(colcon_install: Path, tmp_path: Path) -> None:
    code = (
        "import json, vltseg_ros.ros.node.vltseg_node as n\n"
        "print(json.dumps([n.__file__, callable(n.main)]))"
    )
    path, has_main = _run_installed(colcon_install, code, tmp_path)
    assert Path(path).resolve().is_relative_to((colcon_install / PACKAGE).resolve())
    assert has_main


def _sourced_ros() -> bool:
    """A ROS 2 installation is sourced: AMENT_PREFIX_PATH names more than this venv (which the
    venv's start-up hook puts there itself)."""
    own = os.path.realpath(sys.prefix)
    paths = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
    return any(path and os.path.realpath(path) != own for path in paths)


@pytest.mark.skipif(
    _sourced_ros() or sys.prefix == sys.base_prefix,
    reason="needs this venv's interpreter and no sourced ROS 2",
)
def test_setup_from_an_activated_venv_builds_from_its_base_interpreter() -> None:
    """``make test-jazzy`` from an activated .venv: the venv's python3 imports the Kilted
    wheels' rclpy, which must not pass for a sourced ROS 2 (that set-up replaced .venv-jazzy
    with a venv on top of .venv, then failed)."""
    env = {**os.environ, "ROS_DISTRO": "jazzy", "PYTHON": sys.executable}
    env.pop("AMENT_PREFIX_PATH", None)  # as in the shell: only this venv's start-up hook set it
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup_env.sh"), "--print-venv"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, ".venv-jazzy"), done.stderr
