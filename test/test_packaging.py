"""The ROS 2 package metadata, and the package built and installed with CMake as colcon does."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vltseg_ros"


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
        if isinstance(kw.value, ast.Constant):
            keywords[kw.arg] = kw.value.value
        elif isinstance(kw.value, ast.Name) and kw.value.id in constants:
            keywords[kw.arg] = constants[kw.value.id]
    return keywords


def test_package_xml_matches_setup_py() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    setup_kw = _setup_py_keywords()

    assert root.tag == "package"
    assert root.get("format") == "3"
    assert root.findtext("name") == PACKAGE == setup_kw["name"]
    assert root.findtext("version") == setup_kw["version"]
    import vltseg_ros

    assert vltseg_ros.__version__ == setup_kw["version"]
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("license") == "Apache-2.0"
    buildtool = {e.text for e in root.findall("buildtool_depend")}
    assert {"ament_cmake", "ament_cmake_python"} <= buildtool
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs"} <= exec_deps


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


def test_cmake_build_installs_python_package(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    cmake = shutil.which("cmake", path=bin_dir) or shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    prefixes = _ament_prefixes()
    if not any(
        (Path(p) / "share/ament_cmake/cmake/ament_cmakeConfig.cmake").is_file() for p in prefixes
    ):
        pytest.skip(
            "no ament_cmake CMake package in this venv or AMENT_PREFIX_PATH "
            "(run `make setup`, or source a ROS 2 installation)"
        )
    generator = "Ninja" if shutil.which("ninja") else "Unix Makefiles"
    if generator == "Unix Makefiles" and shutil.which("make") is None:
        pytest.skip("neither ninja nor make is installed")

    build, install = tmp_path / "build", tmp_path / "install"
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes)
    _run(
        [
            cmake,
            "-S",
            str(ROOT),
            "-B",
            str(build),
            "-G",
            generator,
            "-DBUILD_TESTING=OFF",
            f"-DCMAKE_PREFIX_PATH={';'.join(prefixes)}",
            f"-DCMAKE_INSTALL_PREFIX={install}",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ],
        env,
        tmp_path,
    )
    _run([cmake, "--build", str(build)], env, tmp_path)
    _run([cmake, "--install", str(build)], env, tmp_path)

    py_dir = _python_install_dir(install)
    pkg_dir = py_dir / PACKAGE
    assert (pkg_dir / "config.py").is_file(), f"config.py not installed under {py_dir}"
    src_configs = ROOT / PACKAGE / "model_configs"
    yamls = sorted(p.relative_to(src_configs) for p in src_configs.rglob("*.yaml"))
    assert yamls, "the source tree has no model configs"
    for rel in yamls:
        assert (pkg_dir / "model_configs" / rel).is_file(), f"model_configs/{rel} not installed"
    assert not list(pkg_dir.rglob("__pycache__")), "__pycache__ must not be installed"
    assert (install / "share" / PACKAGE / "package.xml").is_file()
    hook = install / "share" / PACKAGE / "environment" / "pythonpath.dsv"
    assert hook.is_file(), "no PYTHONPATH hook: `source install/setup.bash` would not find it"

    # The installed copy (not the source tree) imports and finds its package data.
    probe = (
        "import importlib.resources as r, vltseg_ros.config as c; "
        "print(c.__file__); "
        "print(sorted(f.name for f in r.files('vltseg_ros.model_configs').iterdir() "
        "if f.name.endswith('.yaml')))"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(py_dir), env.get("PYTHONPATH", "")])
    out = _run([sys.executable, "-c", probe], env, tmp_path).stdout.splitlines()
    assert Path(out[0]).resolve() == (pkg_dir / "config.py").resolve()
    top_level = sorted(str(p) for p in yamls if p.parent == Path("."))
    assert out[1] == str(top_level)
