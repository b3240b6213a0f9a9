"""scripts/platform_packages.py: keep the platform's torch / torchvision / onnxruntime or not.

Each case runs the script as scripts/setup_env.sh does, in a fresh interpreter whose only
packages are fakes written into a temporary folder (``python -S`` with it on PYTHONPATH): a
``torch`` with ``__version__``, ``version.cuda`` and ``cuda.is_available()``, a torchvision,
an onnxruntime with its providers, and their dist-info where a case needs one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "platform_packages.py"
CORE = ROOT / "requirements" / "core.txt"
CONSTRAINTS = ROOT / "constraints.txt"
GPU_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def _load_script():
    spec = importlib.util.spec_from_file_location("platform_packages", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


platform_packages = _load_script()


def _dist_info(site: Path, name: str, version: str, module: str, requires=()) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "top_level.txt").write_text(module + "\n")


def fake_torch(site: Path, version: str = "2.8.0", cuda: str | None = "12.6", gpu=True, **kw):
    pkg = site / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"__version__ = {version!r}\nfrom . import cuda, version\n")
    (pkg / "version.py").write_text(f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = None\n")
    (pkg / "cuda.py").write_text(f"def is_available():\n    return {gpu!r}\n")
    if "requires" in kw:
        _dist_info(site, "torch", version, "torch", kw["requires"])


def fake_torchvision(site: Path, version: str = "0.23.0") -> None:
    (site / "torchvision").mkdir()
    (site / "torchvision" / "__init__.py").write_text(f"__version__ = {version!r}\n")


def fake_onnxruntime(site: Path, version: str, providers: list[str], dist: str = "") -> None:
    (site / "onnxruntime").mkdir()
    (site / "onnxruntime" / "__init__.py").write_text(
        f"__version__ = {version!r}\n\ndef get_available_providers():\n    return {providers!r}\n"
    )
    if dist:
        _dist_info(site, dist, version, "onnxruntime")


def run(tmp_path: Path, site: Path, mode: str = "auto", constraints=(CONSTRAINTS,)):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-S", str(SCRIPT), "--mode", mode, "--out", str(out),
         "--requirements", str(CORE), "--constraints", *map(str, constraints)],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    return result, out


def names(path: Path) -> set[str]:
    return {
        platform_packages.normalize(m[1])
        for line in path.read_text().splitlines()
        if (m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", line))
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_cuda_torch_and_its_torchvision_are_kept(tmp_path: Path, site: Path) -> None:
    fake_torch(site, requires=["sympy==1.13.1", "filelock", 'optree; extra == "optree"'])
    fake_torchvision(site)
    result, out = run(tmp_path, site)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch==2.8.0", "torchvision==0.23.0"]
    assert "CUDA 12.6, a GPU is visible" in result.stderr
    core = names(out / "core.txt")
    assert {"torch", "torchvision"}.isdisjoint(core)
    assert names(CORE) - core == {"torch", "torchvision"}  # nothing else left out
    constraints = names(out / "constraints.txt")
    # the pinned build's CUDA wheels and triton, and the kept torch's own dependencies
    assert not [n for n in constraints if n.startswith(("nvidia-", "cuda-")) or n == "triton"]
    assert {"sympy", "filelock"}.isdisjoint(constraints)
    assert {"protobuf", "regex", "ftfy"} <= constraints  # the others' pins stay
    assert "ros-rclpy" not in constraints and "ros-rcl" in constraints


def test_cpu_only_torch_is_replaced_by_the_pinned_one(tmp_path: Path, site: Path) -> None:
    fake_torch(site, cuda=None, gpu=False)
    fake_torchvision(site)
    result, out = run(tmp_path, site)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert "CPU-only" in result.stderr
    assert (out / "core.txt").read_text() == CORE.read_text()
    assert names(out / "constraints.txt") == names(CONSTRAINTS)


def test_keep_forces_a_cpu_only_torch(tmp_path: Path, site: Path) -> None:
    fake_torch(site, version="2.6.0+cpu", cuda=None, gpu=False)
    fake_torchvision(site, "0.21.0+cpu")
    result, out = run(tmp_path, site, mode="keep")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["torch==2.6.0+cpu", "torchvision==0.21.0+cpu"]
    assert "CPU-only" in result.stderr
    assert {"torch", "torchvision"}.isdisjoint(names(out / "core.txt"))


def test_pinned_ignores_a_cuda_torch(tmp_path: Path, site: Path) -> None:
    fake_torch(site)
    fake_torchvision(site)
    fake_onnxruntime(site, "1.22.0", GPU_PROVIDERS, dist="onnxruntime-gpu")
    result, out = run(tmp_path, site, mode="pinned")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert "VLTSEG_TORCH=pinned" in result.stderr
    assert (out / "core.txt").read_text() == CORE.read_text()


@pytest.mark.parametrize("mode", ["auto", "keep"])
def test_a_torch_older_than_setup_py_allows_is_a_clear_error(tmp_path, site, mode) -> None:
    fake_torch(site, version="2.4.1")
    fake_torchvision(site, "0.19.1")
    result, out = run(tmp_path, site, mode=mode)

    assert result.returncode == 2
    assert "torch 2.4.1" in result.stderr and "torch>=2.6" in result.stderr
    assert "VLTSEG_TORCH=pinned" in result.stderr  # the way out
    assert not out.exists()


def test_torchvision_of_another_torch_is_a_clear_error(tmp_path: Path, site: Path) -> None:
    fake_torch(site, version="2.8.0")
    fake_torchvision(site, "0.22.1")
    result, _ = run(tmp_path, site)

    assert result.returncode == 2
    assert "torchvision 0.22.1 does not belong to torch 2.8.0" in result.stderr
    assert "torchvision 0.23.x" in result.stderr


def test_a_kept_torch_without_torchvision_is_a_clear_error(tmp_path: Path, site: Path) -> None:
    fake_torch(site)
    result, _ = run(tmp_path, site)

    assert result.returncode == 2
    assert "no torchvision" in result.stderr


def test_keep_without_any_torch_is_a_clear_error(tmp_path: Path, site: Path) -> None:
    result, _ = run(tmp_path, site, mode="keep")

    assert result.returncode == 2
    assert "VLTSEG_TORCH=keep" in result.stderr and "has no torch" in result.stderr


def test_no_torch_installs_everything_pinned(tmp_path: Path, site: Path) -> None:
    result, out = run(tmp_path, site)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert (out / "core.txt").read_text() == CORE.read_text()


def test_onnxruntime_gpu_is_kept_instead_of_the_cpu_wheel(tmp_path: Path, site: Path) -> None:
    fake_torch(site)
    fake_torchvision(site)
    fake_onnxruntime(site, "1.22.0", GPU_PROVIDERS, dist="onnxruntime-gpu")
    result, out = run(tmp_path, site)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "torch==2.8.0",
        "torchvision==0.23.0",
        "onnxruntime-gpu==1.22.0",
    ]
    assert "TensorrtExecutionProvider" in result.stderr
    assert names(CORE) - names(out / "core.txt") == {"torch", "torchvision", "onnxruntime"}


def test_a_cpu_onnxruntime_is_replaced_and_an_old_gpu_one_refused(tmp_path, site) -> None:
    fake_onnxruntime(site, "1.20.0", ["CPUExecutionProvider"])
    result, out = run(tmp_path, site)
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" in names(out / "core.txt")
    assert "no GPU provider" in result.stderr

    old = tmp_path / "old"
    old.mkdir()
    fake_onnxruntime(old, "1.16.3", GPU_PROVIDERS, dist="onnxruntime-gpu")
    result, _ = run(tmp_path, old)
    assert result.returncode == 2
    assert "onnxruntime-gpu 1.16.3" in result.stderr and "onnxruntime>=1.18" in result.stderr


def test_a_torch_that_does_not_import(tmp_path: Path, site: Path) -> None:
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("raise OSError('libcudnn.so.9: not found')\n")
    result, out = run(tmp_path, site)  # auto: the pinned one instead
    assert result.returncode == 0, result.stderr
    assert "libcudnn.so.9" in result.stderr
    assert "torch" in names(out / "core.txt")

    result, _ = run(tmp_path, site, mode="keep")
    assert result.returncode == 2
    assert "does not import" in result.stderr and "libcudnn.so.9" in result.stderr


def test_an_unknown_mode_is_refused(tmp_path: Path, site: Path) -> None:
    result, _ = run(tmp_path, site, mode="system")
    assert result.returncode == 2
    assert "VLTSEG_TORCH='system'" in result.stderr and "auto, keep, pinned" in result.stderr


def test_minimums_come_from_setup_py() -> None:
    mins = platform_packages.minimums()
    assert mins["torch"] == (2, 6, 0)
    assert mins["torchvision"] == (0, 19, 0)
    assert mins["onnxruntime"] == mins["onnxruntime-gpu"] == (1, 18, 0)
    assert platform_packages.parse_version("2.5.0a0+872d972e41.nv24.08") == (2, 5, 0)


def test_later_constraint_files_replace_earlier_pins(tmp_path: Path) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("# comment\nros-rcl==10.1.3\nros-fastdds==3.2.3\nnumpy_extra==1.0\n")
    second.write_text("ros-rcl==9.2.8\nros_fastrtps==2.14.5\nNumPy-Extra==2.0\n")
    merged = [
        line for line in platform_packages.merge_constraints([first, second]) if "==" in line
    ]
    assert merged == ["ros-fastdds==3.2.3", "ros-rcl==9.2.8", "ros_fastrtps==2.14.5",
                      "NumPy-Extra==2.0"]  # fmt: skip


def test_jazzy_files_pin_the_kilted_packages_in_jazzy_versions(tmp_path: Path) -> None:
    kilted = names(ROOT / "requirements" / "ros.txt")
    jazzy = names(ROOT / "requirements" / "ros-jazzy.txt")
    # Kilted split ament_cmake_ros_core out of Jazzy's ament_cmake_ros, which also loads the
    # gmock / gtest / pytest CMake packages; Jazzy's rosidl_generator_py needs
    # python_cmake_module, which Kilted dropped.
    assert kilted - jazzy == {"ros-ament-cmake-ros-core"}
    assert jazzy - kilted == {
        "ros-ament-cmake-ros",
        "ros-ament-cmake-gmock",
        "ros-ament-cmake-gtest",
        "ros-ament-cmake-pytest",
        "ros-python-cmake-module",
    }
    jazzy_constraints = names(ROOT / "constraints-jazzy.txt")
    assert jazzy_constraints and all(n.startswith("ros-") for n in jazzy_constraints)
    assert jazzy_constraints.isdisjoint(jazzy)  # direct pins live in the requirement file only
    site = tmp_path / "empty"
    site.mkdir()
    result, out = run(tmp_path, site, constraints=(CONSTRAINTS, ROOT / "constraints-jazzy.txt"))
    assert result.returncode == 0, result.stderr
    text = (out / "constraints.txt").read_text()
    assert "ros-rcl==9.2.8" in text.splitlines() and "ros-rcl==10.1.3" not in text


def test_ranges_replace_the_exact_pins_for_older_pythons(tmp_path: Path, site: Path) -> None:
    fake_torch(site)
    fake_torchvision(site)
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-S", str(SCRIPT), "--out", str(out), "--ranges-for", str(CORE),
         "--requirements", str(CORE), ROOT / "requirements" / "dev.txt", "--constraints"],
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    core = (out / "core.txt").read_text().splitlines()
    ranges = platform_packages.setup_requirements()
    assert "numpy>=1.24" in ranges and "onnxruntime>=1.18" in ranges
    # setup.py's ranges without the kept torch and torchvision, no exact pin left
    assert core[1:] == [r for r in ranges if not r.startswith(("torch>=", "torchvision>="))]
    assert not [line for line in core if "==" in line]
    assert (out / "dev.txt").read_text() == (ROOT / "requirements" / "dev.txt").read_text()
    assert names(out / "constraints.txt") == set()
