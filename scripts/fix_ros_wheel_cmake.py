"""Point the ROS 2 wheels' CMake files at this interpreter's Python and numpy headers.

The ros-* wheels on PyPI carry CMake export files written on the machine that built them: the
``INTERFACE_INCLUDE_DIRECTORIES`` of every ``<pkg>__rosidl_generator_py`` target name
``/opt/python/cp311-cp311/include/python3.11`` and that machine's numpy include directory.
Those paths do not exist here, and CMake refuses to link a target whose imported include
directory is missing, so building any message package against the wheels fails until they are
rewritten. Run with the venv's interpreter (scripts/setup_env.sh does); idempotent.

    python scripts/fix_ros_wheel_cmake.py [PREFIX]     (default: sys.prefix)
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

# The wheels are built in manylinux containers, whose interpreters live in /opt/python/<tag>.
_PYTHON_INCLUDE = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(?:_core|core)/include"
)


def fix_prefix(prefix: Path) -> list[Path]:
    """Rewrite the foreign include paths in ``prefix/share/*/cmake/*.cmake``.

    Returns the files that were changed (empty when everything was already fixed).
    """
    import numpy  # the venv's numpy, whose headers the generated bindings compile against

    python_include = sysconfig.get_paths()["include"]
    numpy_include = numpy.get_include()
    changed = []
    for path in sorted((prefix / "share").glob("*/cmake/*.cmake")):
        text = path.read_text()
        if "/opt/python/" not in text:
            continue
        new = _PYTHON_INCLUDE.sub(python_include, text)
        new = _NUMPY_INCLUDE.sub(numpy_include, new)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    prefix = Path(args[0]) if args else Path(sys.prefix)
    changed = fix_prefix(prefix)
    if changed:
        print(f"[setup] rewrote Python/numpy include paths in {len(changed)} CMake files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
