"""The rosbags typestore: ROS 2 Kilted message types plus this package's messages.

The package's ``.msg`` files are registered from their text, so bags with
``vltseg_ros/msg/SegmentationInfo`` and ``ClassSet`` are read and written without the
generated ROS messages (no rclpy). The text is looked up, in this order, in the source tree
(``<repo>/msg``), in ``<sys.prefix>/share/vltseg_ros/msg`` (pip / venv installs) and in the
package's ament share directory (a colcon install, when ``ament_index_python`` is importable).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from vltseg_ros.errors import BagError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
SEGMENTATION_INFO = "vltseg_ros/msg/SegmentationInfo"
CLASS_SET = "vltseg_ros/msg/ClassSet"
PACKAGE_MESSAGES = ("SegmentationInfo", "ClassSet")
"""Message names of this package (``msg/<name>.msg``)."""


def msg_search_dirs() -> list[Path]:
    """Folders that may hold this package's ``.msg`` files, in the order they are tried."""
    dirs = [
        Path(__file__).resolve().parents[2] / "msg",
        Path(sys.prefix) / "share" / "vltseg_ros" / "msg",
    ]
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return dirs
    with contextlib.suppress(LookupError, ValueError):  # PackageNotFoundError: a KeyError
        dirs.append(Path(get_package_share_directory("vltseg_ros")) / "msg")
    return dirs


def find_msg_dir() -> Path:
    """The first folder of :func:`msg_search_dirs` holding every package ``.msg`` file.

    Raises:
        BagError: none holds them (the package is installed without its messages).
    """
    dirs = msg_search_dirs()
    for folder in dirs:
        if all((folder / f"{name}.msg").is_file() for name in PACKAGE_MESSAGES):
            return folder
    names = ", ".join(f"{name}.msg" for name in PACKAGE_MESSAGES)
    raise BagError(
        f"cannot find vltseg_ros's message definitions ({names}) in any of: "
        f"{', '.join(str(d) for d in dirs)}; reinstall the package (pip install . or colcon "
        "build) so that share/vltseg_ros/msg is installed"
    )


@functools.cache
def typestore() -> Typestore:
    """The ROS 2 Kilted typestore with ``vltseg_ros/msg/*`` registered (built once, shared)."""
    folder = find_msg_dir()
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in PACKAGE_MESSAGES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"vltseg_ros/msg/{name}"))
    store.register(types)
    return store
