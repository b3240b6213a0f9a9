"""The rosbags typestore: ROS 2 Kilted message types plus this package's messages.

The package's ``.msg`` files are registered from their text, so bags with
``vltseg_ros/msg/SegmentationInfo`` and ``ClassSet`` are read and written without the
generated ROS messages (no rclpy). The text is looked up, in this order, in the source tree
(``<repo>/msg``), in ``<sys.prefix>/share/vltseg_ros/msg`` (pip / venv installs) and in the
package's ament share directory (a colcon install, when ``ament_index_python`` is importable).

``vision_msgs/msg/VisionClass`` and ``LabelInfo`` (not in rosbags' stores) are registered the
same way, from the subset in ``<repo>/interfaces/vision_msgs/msg``, from
``<sys.prefix>/share/vltseg_ros/interfaces/vision_msgs/msg`` (pip installs) or from the real
vision_msgs package's share directory (a ROS 2 installation): the same field declarations, so
the same RIHS01 type hashes wherever they come from.
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
VISION_CLASS = "vision_msgs/msg/VisionClass"
LABEL_INFO = "vision_msgs/msg/LabelInfo"
VISION_MESSAGES = ("VisionClass", "LabelInfo")
"""The vision_msgs messages the package publishes (LabelInfo) and those they contain."""


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


def vision_msgs_search_dirs() -> list[Path]:
    """Folders that may hold ``VisionClass.msg`` and ``LabelInfo.msg`` of vision_msgs, in the
    order they are tried: this checkout's subset, a pip install's copy of it (under
    share/vltseg_ros, never share/vision_msgs), the vision_msgs package's share directory."""
    dirs = [
        Path(__file__).resolve().parents[2] / "interfaces" / "vision_msgs" / "msg",
        Path(sys.prefix) / "share" / "vltseg_ros" / "interfaces" / "vision_msgs" / "msg",
    ]
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return dirs
    with contextlib.suppress(LookupError, ValueError):
        dirs.append(Path(get_package_share_directory("vision_msgs")) / "msg")
    return dirs


def find_vision_msgs_dir() -> Path:
    """The first folder of :func:`vision_msgs_search_dirs` holding both vision_msgs ``.msg``
    files.

    Raises:
        BagError: none holds them.
    """
    dirs = vision_msgs_search_dirs()
    for folder in dirs:
        if all((folder / f"{name}.msg").is_file() for name in VISION_MESSAGES):
            return folder
    raise BagError(
        "cannot find the definitions of vision_msgs/msg/VisionClass and LabelInfo in any of: "
        f"{', '.join(str(d) for d in dirs)}; reinstall vltseg_ros (pip install .) or install "
        "vision_msgs (ros-$ROS_DISTRO-vision-msgs)"
    )


def require_label_info() -> None:
    """Raise :class:`BagError` naming where it looked when ``vision_msgs/msg/LabelInfo`` is not
    in :func:`typestore` (its definitions were not found)."""
    if LABEL_INFO not in typestore().types:
        find_vision_msgs_dir()  # raises, naming the folders it tried


@functools.cache
def typestore() -> Typestore:
    """The ROS 2 Kilted typestore with ``vltseg_ros/msg/*`` and, when their definitions are
    found, ``vision_msgs/msg/VisionClass`` and ``LabelInfo`` registered (built once, shared)."""
    folder = find_msg_dir()
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in PACKAGE_MESSAGES:
        text = (folder / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"vltseg_ros/msg/{name}"))
    with contextlib.suppress(BagError):  # only LabelInfo bags need them: label_info_cdr says so
        vision = find_vision_msgs_dir()
        for name in VISION_MESSAGES:  # VisionClass first: LabelInfo refers to it
            text = (vision / f"{name}.msg").read_text(encoding="utf-8")
            types.update(get_types_from_msg(text, f"vision_msgs/msg/{name}"))
    store.register(types)
    return store
