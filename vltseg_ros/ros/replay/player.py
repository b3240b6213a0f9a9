"""``vltseg_bag_player``: publish a rosbag2 (mcap or sqlite3) into a running system.

Every topic of the bag is published as recorded (the serialized bytes, no re-encoding), with
``/clock`` following the bag's time (like ``ros2 bag play --clock``; run the node with
``use_sim_time``). Two pacings:

- timed (default): the recorded spacing of the log times, divided by ``rate``;
- lockstep: the next image only after the node published the mask of the previous one (or
  ``lockstep_timeout`` passed): as fast as the node keeps up, no frame dropped for being late.

``ros2 bag play BAG --clock`` on a ROS 2 machine is a drop-in replacement for the timed mode:
the recorder does not depend on this player.

The player never waits for a node that is gone: :meth:`BagPlayer.stop` (the live replay calls it
when the node's process exits, ``main()`` when the executor's thread dies) ends playing at once
with the reason, and in lockstep it stops when nobody publishes masks any more.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any

from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from vltseg_ros.bag.reading import header_stamp_ns, raw_messages
from vltseg_ros.bag.topics import find_topics
from vltseg_ros.ros.node.parameters import declare_table, read_table
from vltseg_ros.ros.node.spinning import Spinner
from vltseg_ros.ros.replay.process import running
from vltseg_ros.ros.replay.readiness import ReplayError, wait_for_ready, wait_until_active
from vltseg_ros.ros.replay.settings import PlayerSettings


def message_class(msgtype: str) -> type:
    """The rclpy message class of a ROS 2 type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagPlayer(Node):
    """Publishes one bag; :attr:`done` is set when every message was published.

    Parameters (the table :class:`~vltseg_ros.ros.replay.settings.PlayerSettings`; an invalid
    value raises :class:`~vltseg_ros.errors.ConfigError` naming every one):
        bag: the rosbag2 directory or file.
        rate: timed playback speed factor (2.0 = twice as fast).
        lockstep: wait for the mask of each image before publishing the next.
        image_topic: the camera topic; "" detects the bag's only image topic.
        mask_topic: where the node publishes masks (lockstep only).
        lockstep_timeout: seconds to wait for a mask before moving on.
        subscriber_timeout: seconds to wait for the node's image subscription (and, in lockstep,
            its mask publisher) before playing anyway.
        wait_for_node: a lifecycle node (``/vltseg_node``) that must be *active* before playing
            (:func:`~vltseg_ros.ros.replay.readiness.wait_until_active`); "" = none.
        wait_for_recorder: a recorder's readiness topic (``/vltseg_replay_recorder/ready``,
            :func:`~vltseg_ros.ros.replay.readiness.wait_for_ready`) to wait for before
            playing; "" = none.
        node_timeout: seconds to wait for each (model loading, a first TensorRT build).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vltseg_bag_player", **kwargs)
        settings = read_table(self, PlayerSettings, declare_table(self, PlayerSettings))
        self.bag = Path(settings.bag)
        self.rate = settings.rate
        self.lockstep = settings.lockstep
        self.lockstep_timeout = settings.lockstep_timeout
        self.subscriber_timeout = settings.subscriber_timeout
        self.wait_for_node = settings.wait_for_node
        self.wait_for_recorder = settings.wait_for_recorder
        self.node_timeout = settings.node_timeout
        topics = find_topics(self.bag, settings.image_topic or None)
        self.image_topic = topics.image_topic
        self.done = threading.Event()
        self.error: BaseException | None = None  # why play() stopped early, if it did
        self._stop_reason: str | None = None  # set by stop()
        self._stopping = threading.Event()
        self._mask_publisher_seen = False  # lockstep: the node's mask publisher has matched
        self.published_images = 0
        self.masks_missed = 0
        self._masks: set[int] = set()  # header stamps [ns] of masks received (lockstep)
        self._mask_arrived = threading.Condition()
        self._clock = self.create_publisher(Clock, "/clock", 10)
        # Every topic's publisher exists before playing starts, so subscribers can match them
        # (a message published by a publisher nobody has discovered yet is lost).
        self._topic_publishers = {
            t.name: self.create_publisher(message_class(t.msgtype), t.name, 10)
            for t in topics.topics
            if t.count
        }
        self._mask_subscription = None
        if self.lockstep:
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self._mask_subscription = self.create_subscription(
                Image, settings.mask_topic, self._on_mask, qos
            )

    def play(self) -> None:
        """Publish the whole bag (blocking; run it beside an executor that spins this node).

        An error is kept in :attr:`error` (and re-raised) so a caller running this in a thread
        can report it.
        """
        try:
            self._play()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()

    def stop(self, reason: str) -> None:
        """Make :meth:`play` end at once, raising :class:`ReplayError` with ``reason``: no more
        waiting for a subscriber, a mask or the next message's time (any thread)."""
        with self._mask_arrived:
            if self._stop_reason is None:
                self._stop_reason = reason
            self._stopping.set()
            self._mask_arrived.notify_all()

    def _check_stopped(self) -> None:
        if self._stop_reason is not None:
            raise ReplayError(self._stop_reason)

    def _play(self) -> None:
        start_wall, start_log = None, None
        for topic, _, log_time, data in raw_messages(self.bag):
            self._check_stopped()
            publisher = self._topic_publishers[topic]
            if start_wall is None:
                self._wait_for_subscriber()
                start_wall, start_log = time.monotonic(), log_time
            elif not self.lockstep and self.rate > 0:
                delay = (log_time - start_log) * 1e-9 / self.rate - (time.monotonic() - start_wall)
                if delay > 0 and self._stopping.wait(delay):
                    self._check_stopped()
            self._clock.publish(Clock(clock=_time_msg(log_time)))
            publisher.publish(data)
            if topic == self.image_topic:
                self.published_images += 1
                if self.lockstep:
                    self._wait_for_mask(data)
        self.get_logger().info(
            f"played {self.published_images} image(s) of {self.bag}"
            + (f"; {self.masks_missed} mask(s) not received in time" if self.masks_missed else "")
        )

    def _wait_for_subscriber(self) -> None:
        """Wait (up to ``subscriber_timeout``) for the node to subscribe to the image topic and,
        in lockstep, for this player's mask subscription to match the node's publisher: a
        mask published before that match is lost, and the player would wait out
        ``lockstep_timeout`` for it."""
        image_pub = self._topic_publishers[self.image_topic]

        def matched() -> bool:
            masks = self._mask_subscription
            return image_pub.get_subscription_count() > 0 and (
                masks is None or masks.get_publisher_count() > 0
            )

        deadline = time.monotonic() + self.subscriber_timeout
        while not matched() and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                self._check_stopped()
        if image_pub.get_subscription_count() == 0:
            self.get_logger().warning(f"nobody subscribes to {self.image_topic}; playing anyway")
        elif not matched():
            topic = self._mask_subscription.topic_name
            self.get_logger().warning(f"nobody publishes {topic} yet; playing anyway")

    def _wait_for_mask(self, data: bytes) -> None:
        """Wait (up to ``lockstep_timeout``) for the mask of the image ``data``; stop (raise
        :class:`ReplayError`) when :meth:`stop` was called or the node's mask publisher, once
        matched, is gone (the node exited: its mask would never come)."""
        key = header_stamp_ns(data)
        deadline = time.monotonic() + self.lockstep_timeout
        with self._mask_arrived:
            while key not in self._masks:
                self._check_stopped()
                if self._mask_subscription.get_publisher_count():
                    self._mask_publisher_seen = True
                elif self._mask_publisher_seen:
                    raise ReplayError(
                        f"nobody publishes {self._mask_subscription.topic_name} any more "
                        "(did the node exit?)"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.masks_missed += 1
                    break
                self._mask_arrived.wait(min(remaining, 0.5))
            self._masks.discard(key)

    def _on_mask(self, mask: Image) -> None:
        with self._mask_arrived:
            stamp = mask.header.stamp
            self._masks.add(stamp.sec * 1_000_000_000 + stamp.nanosec)
            self._mask_arrived.notify_all()


def _time_msg(nanoseconds: int) -> Any:
    from builtin_interfaces.msg import Time

    sec, nanosec = divmod(nanoseconds, 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run vltseg_ros vltseg_bag_player --ros-args -p bag:=...``."""
    with running("vltseg_bag_player", BagPlayer, args) as player:
        spinner = Spinner([player], on_failure=player.stop).start()
        try:
            if player.wait_for_node:
                wait_until_active(
                    player,
                    player.wait_for_node,
                    gone=spinner.failure,
                    timeout=player.node_timeout,
                )
            if player.wait_for_recorder:
                wait_for_ready(
                    player,
                    player.wait_for_recorder,
                    timeout=player.node_timeout,
                    gone=spinner.failure,
                )
            player.play()
        except ReplayError as exc:  # nothing (more) to play into
            count = player.published_images
            what = f"stopped after {count} image(s)" if count else "not playing"
            player.get_logger().error(f"{what}: {exc}")
            raise SystemExit(1) from exc
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            spinner.stop()


if __name__ == "__main__":
    main()
