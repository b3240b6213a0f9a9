"""Start-up hook of the project's venv: let every Python process find the venv's ROS prefix.

scripts/setup_env.sh installs this file as ``site-packages/_vltseg_ros_venv.py`` with a
``vltseg_ros_venv.pth`` that imports it, so it runs at interpreter start-up in
``.venv/bin/python``, under pytest and in every subprocess started with ``sys.executable``: no
``source`` needed.

setup_env.sh builds the package's messages with CMake into the venv as an install prefix
(type-support libraries in ``<venv>/lib``, the ament index in ``<venv>/share``):

- rosidl's type-support dispatch loads ``libvltseg_ros__rosidl_typesupport_*.so`` by bare name
  with dlopen, which searches the ``LD_LIBRARY_PATH`` the process *started* with. With the PyPI
  wheels, their own hook (``ros_wheels_bootstrapper.pth``) already restarts Python once with
  ``<venv>/lib`` on it; this ``.pth`` sorts after that one, so it then finds the path set and
  does nothing. With a sourced ROS 2 the path lacks the venv, and this hook restarts Python
  once the same way (a guard variable prevents loops).
- ament_index_python finds packages on ``AMENT_PREFIX_PATH``, which the wheels leave unset.

The venv is appended, never prepended: a sourced installation or workspace overlay keeps
precedence over it.
"""

import os
import sys

_GUARD = "_VLTSEG_ROS_VENV_RESTARTED"


def _append(var: str, value: str) -> bool:
    """Append ``value`` to the path list ``var``; False when it was already there."""
    parts = [p for p in os.environ.get(var, "").split(os.pathsep) if p]
    if value in parts:
        return False
    os.environ[var] = os.pathsep.join([*parts, value])
    return True


def _main() -> None:
    _append("AMENT_PREFIX_PATH", sys.prefix)
    lib = os.path.join(sys.prefix, "lib")
    if not _append("LD_LIBRARY_PATH", lib) or os.environ.get(_GUARD):
        return
    argv = getattr(sys, "orig_argv", None)
    if not sys.executable or not argv:  # embedded interpreter: nothing to restart
        return
    os.environ[_GUARD] = "1"
    try:
        os.execve(sys.executable, argv, dict(os.environ))
    except OSError as exc:
        sys.stderr.write(
            f"vltseg_ros venv: could not restart Python with {lib} on LD_LIBRARY_PATH ({exc}); "
            "the vltseg_ros messages will not load in this process\n"
        )


_main()
