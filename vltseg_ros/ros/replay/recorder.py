"""``vltseg_replay_recorder``: collect a node's outputs during a bag replay and score them.

Subscribes to one camera's ``segmentation/{mask,confidence,overlay,info,camera_info}`` topics
and its ``segmentation/label_info`` (vision_msgs/LabelInfo, transient local: it arrives even when
the node published it before the recorder subscribed), serialized, so they are written to the
output bag unchanged, and matches every mask to the bag's ground-truth label with the same
header stamp. When every image of the bag has its mask
(or nothing arrived for ``idle_timeout`` seconds) it writes the evaluation report (per-class
IoU, mIoU, pixel accuracy, engine latency percentiles, frames the node dropped) and an output
bag with the input topics plus the outputs (and, with ``save_overlays``, one overlay PNG per
frame, named after its input frame: :mod:`vltseg_ros.bag.frame_names`). It reads labels and
images from the bag file itself, so it works with any player (``vltseg_bag_player`` or
``ros2 bag play``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Bool
from vision_msgs.msg import LabelInfo

from vltseg_ros.bag.frame_names import frame_name, read_frame_names
from vltseg_ros.bag.reading import header_stamp_ns, raw_messages, read_labels
from vltseg_ros.bag.topics import find_topics, open_bag
from vltseg_ros.bag.writing import BagWriter
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import EvaluationReport, write_report
from vltseg_ros.inference.outputs import LABEL_INFO, output_topic
from vltseg_ros.io.image_files import write_png
from vltseg_ros.io.image_messages import image_to_array
from vltseg_ros.msg import ClassSet, SegmentationInfo
from vltseg_ros.ros.node.messages import OUTPUT_TYPES, type_name
from vltseg_ros.ros.node.parameters import declare_table, read_table
from vltseg_ros.ros.replay.process import running
from vltseg_ros.ros.replay.readiness import READY_QOS, READY_TOPIC
from vltseg_ros.ros.replay.settings import RecorderSettings


class ReplayRecorder(Node):
    """Records and scores one camera's outputs; :attr:`done` is set when it is complete.

    Its parameters are the table :class:`~vltseg_ros.ros.replay.settings.RecorderSettings`; an
    invalid value raises :class:`~vltseg_ros.errors.ConfigError` naming every one.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vltseg_replay_recorder", **kwargs)
        settings = read_table(self, RecorderSettings, declare_table(self, RecorderSettings))
        self.bag = Path(settings.bag)
        self.out = Path(settings.out)
        self._idle_timeout = settings.idle_timeout
        self._start_timeout = settings.start_timeout
        topics = find_topics(self.bag, label_topic=settings.label_topic or None)
        self.expected = topics.image_count
        self._labels = read_labels(self.bag, topics.label_topic) if topics.label_topic else {}
        with open_bag(self.bag) as reader:  # the earliest log time or frame stamp of the bag
            self._start_ns = min([reader.start_time, *self._labels])
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._class_set: ClassSet | None = None
        self._pending: list[Image] = []
        self._masks: set[int] = set()
        self._latencies: list[float] = []
        self._info: SegmentationInfo | None = None
        self._confusion: ConfusionMatrix | None = None
        self._scored = 0
        self._report: EvaluationReport | None = None
        self._last_activity: float | None = None  # monotonic time of the last output
        self._started = time.monotonic()
        output_bag = settings.output_bag or str(self.out / "segmented")
        self._writer = self._open_writer(Path(output_bag)) if settings.write_bag else None
        self._overlay_dir = self.out / "overlays" if settings.save_overlays else None
        self._frame_names = read_frame_names(self.bag) if settings.save_overlays else {}
        camera = settings.camera
        outputs = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self._outputs = {}
        self._topics: dict[str, str] = {}  # output kind -> its full topic name
        for kind, msg_class in OUTPUT_TYPES.items():
            self._outputs[kind] = subscription = self.create_subscription(
                msg_class,
                output_topic(camera, kind),
                lambda data, k=kind: self._on_output(k, data),
                outputs,
                raw=True,
            )
            if self._writer is not None:
                self._writer.add_topic(subscription.topic_name, type_name(msg_class))
            self._topics[kind] = subscription.topic_name
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self.create_subscription(ClassSet, "classes", self._on_classes, latched)
        self._label_info_topic = self.create_subscription(
            LabelInfo, output_topic(camera, LABEL_INFO), self._on_label_info, latched, raw=True
        ).topic_name
        if self._writer is not None:
            self._writer.add_topic(self._label_info_topic, type_name(LabelInfo))
        # "ready" (latched) once the node's mask and info publishers have matched: a player
        # that waits for it (wait_for_recorder) publishes nothing this recorder would miss
        self._ready = self.create_publisher(Bool, READY_TOPIC, READY_QOS)
        self._announced = False
        self._diagnostics_name = f"camera {camera.rstrip('/').rsplit('/', 1)[-1]}"
        self._node_drops = 0  # frames the node reports dropped (stale, busy, bad input)
        self._node_busy = False  # the node has received frames it has not finished
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.create_timer(0.2, self._check_finished)

    def finish(self) -> EvaluationReport:
        """Score what arrived, write the report and the output bag; returns the report (the
        same one on later calls)."""
        if self._report is not None:
            return self._report
        with self._lock:
            dropped = self.expected - len(self._masks)
            names = tuple(self._class_set.names) if self._class_set else ()
            confusion = self._confusion or ConfusionMatrix(max(len(names), 1))
            report = EvaluationReport(
                class_names=names,
                confusion=confusion,
                latencies_ms=list(self._latencies),
                frames=self._scored,
                dropped_frames=dropped,
                source=str(self.bag),
                model=self._info.model if self._info else "",
                checkpoint=self._info.checkpoint if self._info else "",
            )
            # a callback that runs after this (a late output) finds no writer: never a closed one
            writer, self._writer = self._writer, None
        if writer is not None:
            self._copy_inputs(writer)
            writer.close()
        paths = write_report(report, self.out)
        self._report = report
        self.get_logger().info(
            f"{len(self._masks)}/{self.expected} frames segmented, {dropped} dropped, "
            f"{self._scored} scored; report: {paths['markdown']}"
        )
        return report

    def _on_output(self, kind: str, data: bytes) -> None:
        decode = kind in ("mask", "info") or (kind == "overlay" and self._overlay_dir)
        msg = deserialize_message(data, OUTPUT_TYPES[kind]) if decode else None
        with self._lock:
            self._last_activity = time.monotonic()
            if self._writer is not None:  # logged at the input's stamp: the bag's timeline
                self._writer.write(self._topics[kind], header_stamp_ns(data), data)
            if kind == "info":
                self._info = msg
                self._latencies.append(msg.inference_latency * 1e3)
            elif kind == "overlay" and msg is not None:
                self._save_overlay(msg)
            elif kind == "mask":
                self._masks.add(_stamp_ns(msg.header.stamp))
                if self._class_set is None:
                    self._pending.append(msg)
                else:
                    self._score(msg)

    def _on_label_info(self, data: bytes) -> None:
        """Write the node's LabelInfo as it came, logged at its header stamp, or at the start of
        the input bag when that is earlier (a node on sim time stamps the LabelInfo it publishes
        at activation 0, before the first /clock), so that it comes before the masks."""
        with self._lock:
            if self._writer is not None:
                log_time = max(header_stamp_ns(data), self._start_ns)
                self._writer.write(self._label_info_topic, log_time, data)

    def _on_classes(self, classes: ClassSet) -> None:
        with self._lock:
            self._class_set = classes
            self._confusion = ConfusionMatrix(len(classes.names), classes.ignore_index)
            for mask in self._pending:
                self._score(mask)
            self._pending = []

    def _score(self, mask: Image) -> None:
        label = self._labels.get(_stamp_ns(mask.header.stamp))
        if label is None:
            return
        prediction = np.frombuffer(mask.data, np.uint8).reshape(mask.height, mask.step)
        prediction = prediction[:, : mask.width]
        try:
            self._confusion.update(prediction, label)
        except ValueError as exc:
            self.get_logger().error(f"mask not scored: {exc}")
            return
        self._scored += 1

    def _save_overlay(self, overlay: Image) -> None:
        """``overlays/<frame name>.png`` (rgb8 message -> PNG): the input frame's name, or its
        stamp in ns (:mod:`vltseg_ros.bag.frame_names`)."""
        rgb, _ = image_to_array(overlay)
        name = frame_name(_stamp_ns(overlay.header.stamp), self._frame_names)
        try:
            write_png(self._overlay_dir / f"{name}.png", rgb[..., ::-1])
        except OSError as exc:  # a full disk: the scores and the bag still count
            self.get_logger().error(f"overlay not saved: {exc.strerror}: {exc.filename}")

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        """Track the node's own account of this camera's frames (received, published, dropped)."""
        for status in array.status:
            if not status.name.endswith(self._diagnostics_name):
                continue
            values = {kv.key: kv.value for kv in status.values}
            try:
                counts = {
                    k: int(values[k])
                    for k in (
                        "received",
                        "published",
                        "dropped_stale",
                        "dropped_busy",
                        "dropped_bad_input",
                    )
                }
            except (KeyError, ValueError):
                return
            drops = counts["dropped_stale"] + counts["dropped_busy"] + counts["dropped_bad_input"]
            with self._lock:
                if drops != self._node_drops:
                    self._last_activity = time.monotonic()
                self._node_drops = drops
                self._node_busy = counts["received"] > counts["published"] + drops

    def _check_finished(self) -> None:
        """Done when every image of the bag is accounted for: segmented, or dropped as the node
        reports. Otherwise (frames lost in transport) give up when the node is idle and nothing
        happened for ``idle_timeout`` s, or after ``start_timeout`` s without any output (a big
        model can take minutes to load)."""
        if not self._announced and all(
            self._outputs[kind].get_publisher_count() > 0 for kind in ("mask", "info")
        ):
            self._ready.publish(Bool(data=True))
            self._announced = True
        now = time.monotonic()
        with self._lock:
            complete = len(self._masks) + self._node_drops >= self.expected
            if self._last_activity is None:
                idle = now - self._started > self._start_timeout
            else:
                quiet = now - self._last_activity > self._idle_timeout
                idle = quiet and not self._node_busy
        if complete or idle:
            self.done.set()

    def _open_writer(self, path: Path) -> BagWriter:
        """The output bag (a rosbag2 directory); sqlite3 storage for a ``.db3`` name, else mcap."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return BagWriter(path, storage="sqlite3" if path.suffix == ".db3" else "mcap")

    def _copy_inputs(self, writer: BagWriter) -> None:
        """The input bag's topics, unchanged, beside the outputs."""
        added: set[str] = set()
        for topic, msgtype, log_time, data in raw_messages(self.bag):
            if topic not in added:
                writer.add_topic(topic, msgtype)
                added.add(topic)
            writer.write(topic, log_time, data)


def _stamp_ns(stamp: Any) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run vltseg_ros vltseg_replay_recorder --ros-args -p bag:=...``."""
    with running("vltseg_replay_recorder", ReplayRecorder, args) as recorder:
        try:
            while rclpy.ok() and not recorder.done.is_set():
                rclpy.spin_once(recorder, timeout_sec=0.1)
            recorder.finish()
        except (KeyboardInterrupt, ExternalShutdownException):
            recorder.finish()


if __name__ == "__main__":
    main()
