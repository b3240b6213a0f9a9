"""rosbag2 tools (pure Python, with ``rosbags``; no rclpy): beside the ROS adapter.

- :mod:`~vltseg_ros.bag.typestore`: ROS 2 Kilted types plus ``vltseg_ros/msg/*``.
- :mod:`~vltseg_ros.bag.topics`: opening bags, finding image / label topics.
- :mod:`~vltseg_ros.bag.reading`: frames and labels (matched by header stamp).
- :mod:`~vltseg_ros.bag.writing`, :mod:`~vltseg_ros.bag.serialization`: writing CDR messages.
- :mod:`~vltseg_ros.bag.frames`: image / label files in folders (Cityscapes, ACDC, plain).
- :mod:`~vltseg_ros.bag.make_bag`: bags from folders or synthetic scenes (``vltseg make-bag``).
- :mod:`~vltseg_ros.bag.frame_names`: the frames' names make-bag stores in ``metadata.yaml``.
- :mod:`~vltseg_ros.bag.evaluate`, :mod:`~vltseg_ros.bag.result_writer`: ``vltseg bag-eval``;
  :mod:`~vltseg_ros.bag.label_folders`: its labels folders (matched by order);
  :mod:`~vltseg_ros.bag.fleet`: several bags, and the shares of torchrun processes.
- :mod:`~vltseg_ros.bag.score_masks`: ``vltseg bag-eval --mask-topic`` (masks already in a bag).
"""

from __future__ import annotations

from vltseg_ros.errors import BagError


def require_rosbags() -> None:
    """Raise :class:`BagError` with the install command when ``rosbags`` is missing.

    This package's modules import ``rosbags``; the ``vltseg`` subcommands call this before
    importing them, so a machine without it gets a message instead of a traceback.
    """
    try:
        import rosbags  # noqa: F401
    except ImportError as exc:
        raise BagError(
            "reading and writing bags needs the rosbags package: pip install rosbags"
        ) from exc
