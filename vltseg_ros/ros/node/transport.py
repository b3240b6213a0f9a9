"""Fast DDS transport settings for camera-sized messages (the shipped large-data profile).

With Fast DDS's default transports, 6 MiB images (1024x2048 rgb8) at 30 Hz between two processes
arrive seldom (best-effort QoS) or late (reliable QoS, ~60-100 ms); the profile
``config/fastdds_large_data.xml`` fixes that with a 64 MiB shared-memory segment (see its
comments for measurements). Fast DDS reads it from the environment when a process creates its
first participant, so the variables must be in the environment of every process of the system
before ``rclpy.init()``: set them in a launch file (``SetEnvironmentVariable`` or a node's
``additional_env``), a shell, or a test's subprocess environment. Other RMW implementations
ignore them.

No rclpy import: usable from launch files, tests and tools without a ROS context.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "vltseg_ros"
LARGE_DATA_PROFILE = "fastdds_large_data.xml"


def large_data_profile_path() -> Path:
    """Absolute path of the shipped Fast DDS large-data profile (an XML file).

    Looks in the source tree this module runs from (a checkout or editable install:
    ``<repo>/config/``) first, then in the installed share directory of package
    ``vltseg_ros`` found through the ament index (``AMENT_PREFIX_PATH``, e.g. after
    ``source install/setup.bash``).

    Raises:
        FileNotFoundError: neither location has the file; the message lists where it looked.
    """
    looked = []
    repo = Path(__file__).resolve().parents[2]
    if (repo / "package.xml").is_file():  # running from the source tree
        candidate = repo / "config" / LARGE_DATA_PROFILE
        if candidate.is_file():
            return candidate
        looked.append(str(candidate))
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE))
    except ImportError:
        looked.append("the ament index (ament_index_python is not installed)")
    except (LookupError, OSError) as exc:  # package not found, AMENT_PREFIX_PATH unset
        looked.append(f"the ament index ({exc})")
    else:
        candidate = share / "config" / LARGE_DATA_PROFILE
        if candidate.is_file():
            return candidate
        looked.append(str(candidate))
    raise FileNotFoundError(
        f"Fast DDS profile {LARGE_DATA_PROFILE} not found; looked in: {'; '.join(looked)}. "
        f"Build and source the {PACKAGE} package (colcon build; source install/setup.bash) or "
        "run from its source tree."
    )


def large_data_environment() -> dict[str, str]:
    """Environment variables that make Fast DDS use the shipped large-data profile.

    Returns ``{"FASTDDS_DEFAULT_PROFILES_FILE": <absolute path of the XML>,
    "RMW_FASTRTPS_USE_QOS_FROM_XML": "0"}``; the second keeps the QoS settings of the ROS code
    (the profile only changes transports). Merge the result into a process environment, e.g.
    ``subprocess.Popen(cmd, env={**os.environ, **large_data_environment()})``.

    Raises:
        FileNotFoundError: the profile is neither in the source tree nor installed.
    """
    return {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(large_data_profile_path()),
        "RMW_FASTRTPS_USE_QOS_FROM_XML": "0",
    }
