"""Decide which of torch, torchvision and onnxruntime `make setup` takes from the platform.

Run by scripts/setup_env.sh with the interpreter the venv is made from (``$PYTHON``: a system
ROS 2's python3, JetPack's, an NVIDIA container's, or a plain one):

    python scripts/platform_packages.py --mode auto|keep|pinned --out DIR \\
        --requirements requirements/core.txt [...] --constraints constraints.txt [...]

The modes (``VLTSEG_TORCH``):

- ``auto`` (default): a CUDA (or ROCm) build of torch that this interpreter imports is kept,
  with its torchvision; an onnxruntime with a GPU execution provider (onnxruntime-gpu) is kept.
  A CPU-only torch, a CPU onnxruntime or none at all: the pinned wheels are installed instead.
- ``keep``: the interpreter's torch and torchvision are kept whatever their build (an error if it
  has none), and its onnxruntime when it has one.
- ``pinned``: nothing is kept; the pinned wheels of requirements/core.txt shadow the platform's.

Kept packages must meet the minimums of setup.py's ``install_requires`` and torchvision must
belong to torch's minor series (torch 2.N <-> torchvision 0.(N+15)); otherwise the script exits
with 2 and a message that says what to do.

Writes into DIR a copy of every requirement file (same name) without the lines of the kept
packages (``--ranges-for requirements/core.txt``: that file's content replaced by setup.py's
``install_requires`` ranges, for interpreters that its exact versions do not support), and
``constraints.txt``: the constraint files merged (a later file's pin of a package
replaces an earlier one's, e.g. constraints-jazzy.txt over constraints.txt), without the pins
of the kept packages and, for a kept torch, of what the pinned torch build brings (CUDA wheels,
triton) and of the kept packages' own dependencies (their versions are the platform's).
Prints on stdout one line: the kept distributions as ``name==version`` (empty: none kept);
explanations go to stderr.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("auto", "keep", "pinned")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")
# Pins that only the pinned torch build needs (its CUDA runtime wheels and triton).
TORCH_BUILD_PINS = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


class PlatformError(Exception):
    """A platform package that the project cannot work with (message says what to do)."""


@dataclass
class Found:
    """One package as the interpreter imports it."""

    module: str
    version: str = ""
    location: str = ""
    error: str = ""  # the import failed with this (the package is installed but broken)
    cuda: str | None = None  # torch: CUDA (or HIP) version it was built for, None = CPU-only
    gpu_visible: bool = False  # torch: cuda.is_available()
    providers: list[str] = field(default_factory=list)  # onnxruntime
    distribution: str = ""  # the distribution that installed it, when known

    @property
    def label(self) -> str:
        return f"{self.distribution or self.module} {self.version} ({self.location})"


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_version(text: str) -> tuple[int, int, int]:
    """The numeric release of a version string (``2.5.0a0+nv24.08`` -> (2, 5, 0))."""
    match = _VERSION.match(text.strip())
    if not match:
        raise PlatformError(f"cannot read the version {text!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def minimums(setup_py: Path = ROOT / "setup.py") -> dict[str, tuple[int, int, int]]:
    """``name>=version`` requirements of setup.py (install_requires and extras) by name."""
    found: dict[str, tuple[int, int, int]] = {}
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)>=([0-9.]+)", node.value)
            if match:
                found[normalize(match[1])] = parse_version(match[2])
    missing = {"torch", "torchvision", "onnxruntime"} - set(found)
    if missing:
        raise PlatformError(f"setup.py has no 'name>=version' requirement for {sorted(missing)}")
    return found


def setup_requirements(setup_py: Path = ROOT / "setup.py") -> list[str]:
    """setup.py's ``install_requires`` (the version ranges of the ML core)."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return list(ast.literal_eval(node.value))
    raise PlatformError("setup.py has no literal install_requires list")


def _distribution(module: str) -> str:
    """The installed distribution that provides the top-level module (e.g. onnxruntime-gpu)."""
    names = importlib.metadata.packages_distributions().get(module, [])
    return normalize(names[0]) if names else ""


def probe(module: str) -> Found | None:
    """Import ``module`` as the platform has it; None when it is not installed."""
    if importlib.util.find_spec(module) is None:
        return None
    found = Found(module)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any failure: the package is there but unusable
        found.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return found
    found.version = str(getattr(mod, "__version__", ""))
    found.location = str(Path(getattr(mod, "__file__", None) or "?").parent)
    found.distribution = _distribution(module)
    if module == "torch":
        version = getattr(mod, "version", None)
        found.cuda = getattr(version, "cuda", None) or getattr(version, "hip", None)
        try:
            found.gpu_visible = bool(mod.cuda.is_available())
        except Exception:
            found.gpu_visible = False
    elif module == "onnxruntime":
        try:
            found.providers = list(mod.get_available_providers())
        except Exception as exc:
            found.error = f"get_available_providers() failed: {exc}"
    return found


def _check_minimum(found: Found, name: str, mins: dict[str, tuple[int, int, int]]) -> None:
    need = mins[name]
    if found.error:
        raise PlatformError(f"{found.module} is installed but does not import ({found.error})")
    if parse_version(found.version) < need:
        raise PlatformError(
            f"{found.label} is older than vltseg_ros needs ({name}>={'.'.join(map(str, need))})"
        )


def _check_pair(torch: Found, vision: Found | None) -> None:
    if vision is None:
        raise PlatformError(
            f"torch {torch.version} is kept but this interpreter has no torchvision: install the "
            "torchvision built for it (the platform's, e.g. JetPack's wheel or built from source)"
        )
    if vision.error:
        raise PlatformError(f"torchvision is installed but does not import ({vision.error})")
    t_major, t_minor, _ = parse_version(torch.version)
    v_major, v_minor, _ = parse_version(vision.version)
    if t_major == 2 and (v_major, v_minor) != (0, t_minor + 15):
        raise PlatformError(
            f"torchvision {vision.version} does not belong to torch {torch.version} (torch "
            f"2.{t_minor} needs torchvision 0.{t_minor + 15}.x): install the matching one"
        )


@dataclass
class Decision:
    kept: list[Found]
    notes: list[str]

    @property
    def kept_pins(self) -> list[str]:
        return [f"{f.distribution or f.module}=={f.version}" for f in self.kept]


def decide(mode: str, mins: dict[str, tuple[int, int, int]], how: str) -> Decision:
    """Which platform packages to keep; ``how`` names the setting in messages.

    Raises:
        PlatformError: a kept package is too old, broken or mismatched, or ``keep`` finds none.
    """
    if mode not in MODES:
        raise PlatformError(f"{how}={mode!r}: use one of {', '.join(MODES)}")
    if mode == "pinned":
        return Decision([], [f"{how}=pinned: torch, torchvision, onnxruntime: the pinned ones"])
    torch, vision, ort = probe("torch"), probe("torchvision"), probe("onnxruntime")
    kept: list[Found] = []
    notes: list[str] = []
    if torch is None:
        if mode == "keep":
            raise PlatformError(f"{how}=keep, but {sys.executable} has no torch")
        notes.append(f"torch, torchvision: the pinned ones ({sys.executable} has no torch)")
    elif torch.error and mode == "auto":
        notes.append(
            f"torch, torchvision: the pinned ones (the platform's torch does not "
            f"import: {torch.error})"
        )
    elif torch.cuda is None and mode == "auto":
        notes.append(f"torch, torchvision: the pinned ones ({torch.label} is CPU-only)")
    else:
        _check_minimum(torch, "torch", mins)
        _check_pair(torch, vision)
        _check_minimum(vision, "torchvision", mins)
        kept += [torch, vision]
        build = f"CUDA {torch.cuda}" if torch.cuda else "CPU-only"
        gpu = "a GPU is visible" if torch.gpu_visible else "no GPU visible now"
        notes.append(f"torch: the platform's {torch.label}, {build}, {gpu}")
        notes.append(f"torchvision: the platform's {vision.label}")
    if ort is None:
        return Decision(kept, notes)
    if mode == "keep" or any(p in ort.providers for p in GPU_PROVIDERS):
        _check_minimum(ort, "onnxruntime", mins)
        kept.append(ort)
        notes.append(f"onnxruntime: the platform's {ort.label}, {', '.join(ort.providers)}")
    elif ort.error:
        notes.append(f"onnxruntime: the pinned one (the platform's does not import: {ort.error})")
    else:
        notes.append(f"onnxruntime: the pinned one ({ort.label} has no GPU provider)")
    return Decision(kept, notes)


def _name(line: str) -> str | None:
    """Normalized package name of a requirement / constraint line (None: comment, option)."""
    if line.lstrip().startswith(("#", "-")):
        return None
    match = _NAME.match(line)
    return normalize(match[1]) if match else None


def _filtered(lines: list[str], drop: set[str]) -> list[str]:
    return [line for line in lines if _name(line) not in drop]


def dropped_names(decision: Decision) -> tuple[set[str], set[str]]:
    """(requirement names, constraint names) to leave out for the kept packages."""
    requirements: set[str] = set()
    constraints: set[str] = set()
    for found in decision.kept:
        names = {normalize(found.module)} | ({found.distribution} - {""})
        requirements |= names
        constraints |= names
        if found.distribution:  # its dependencies come with it, in the platform's versions
            for req in importlib.metadata.requires(found.distribution) or []:
                if "extra ==" not in req and (name := _name(req)):
                    constraints.add(name)
    return requirements, constraints


def merge_constraints(paths: list[Path]) -> list[str]:
    """Constraint files in order, a later pin of the same package replacing the earlier one."""
    lines: list[str] = []
    for path in paths:
        new = path.read_text().splitlines()
        replaced = {name for line in new if (name := _name(line))}
        lines = _filtered(lines, replaced)
        lines += [f"# --- {path.name}", *new]
    return lines


def write_files(
    out: Path,
    requirements: list[Path],
    constraints: list[Path],
    decision: Decision,
    ranges_for: Path | None = None,
) -> None:
    """The requirement and constraint files for pip, without the kept packages' pins.

    ``ranges_for``: the requirement file whose exact pins are replaced by setup.py's ranges.
    """
    drop_req, drop_con = dropped_names(decision)
    torch_kept = any(f.module == "torch" for f in decision.kept)
    out.mkdir(parents=True, exist_ok=True)
    for path in requirements:
        if ranges_for is not None and path.resolve() == ranges_for.resolve():
            lines = [f"# setup.py's install_requires, in place of {path.name}'s exact pins"]
            lines += setup_requirements()
        else:
            lines = path.read_text().splitlines()
        (out / path.name).write_text("\n".join(_filtered(lines, drop_req)) + "\n")
    merged = [
        line
        for line in _filtered(merge_constraints(constraints), drop_con)
        if not (torch_kept and (name := _name(line)) and TORCH_BUILD_PINS.match(name))
    ]
    (out / "constraints.txt").write_text("\n".join(merged) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="auto", help="auto, keep or pinned")
    parser.add_argument("--setting", default="VLTSEG_TORCH", help="the mode's name in messages")
    parser.add_argument("--requirements", type=Path, nargs="+", required=True)
    parser.add_argument("--constraints", type=Path, nargs="*", default=[])
    parser.add_argument("--ranges-for", type=Path, help="a requirement file: setup.py's ranges")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        decision = decide(args.mode, minimums(), args.setting)
    except PlatformError as exc:
        print(f"[setup] ERROR: {exc}", file=sys.stderr)
        if args.mode != "pinned":
            print(f"[setup] ({args.setting}=pinned installs the pinned wheels)", file=sys.stderr)
        return 2
    for note in decision.notes:
        print(f"[setup] {note}", file=sys.stderr)
    write_files(args.out, args.requirements, args.constraints, decision, args.ranges_for)
    print(" ".join(decision.kept_pins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
