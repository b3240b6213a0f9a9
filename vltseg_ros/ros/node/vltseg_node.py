"""``vltseg_node``: camera images in, semantic masks and per-class confidence out.

A lifecycle node. configure: read and validate parameters, create publishers. activate: load
the model, warm it up, publish the class set, start the inference worker, subscribe.
deactivate: unsubscribe, stop the worker, free the model (and GPU memory). cleanup: destroy
publishers. With ``autostart`` (default) a plain ``ros2 run`` brings it to active. Every failed
transition logs one ERROR line saying why.

Subscription callbacks only hand messages to the :class:`FrameScheduler`; one worker thread
decodes, runs the newest frame of every camera as one batch, and publishes. The node only
translates: the segmentation is :class:`vltseg_ros.inference.predictor.Segmenter`, the outputs
:func:`vltseg_ros.inference.outputs.frame_outputs`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from vltseg_ros.config.class_map import BoundClassMap, read_class_map
from vltseg_ros.errors import InvalidImageError, VLTSegError
from vltseg_ros.inference.outputs import frame_outputs, label_entries
from vltseg_ros.inference.predictor import PreparedFrame, Segmenter
from vltseg_ros.inference.result import SegmentationResult
from vltseg_ros.msg import ClassSet
from vltseg_ros.ros.node.camera_io import CameraIO, decode, qos_profile
from vltseg_ros.ros.node.compat import LifecycleNode
from vltseg_ros.ros.node.health import node_statuses, watch_shift
from vltseg_ros.ros.node.launcher import run_node
from vltseg_ros.ros.node.live_parameters import LiveChange, live_change
from vltseg_ros.ros.node.logging_bridge import heartbeat
from vltseg_ros.ros.node.messages import class_set_message, label_info_message, output_messages
from vltseg_ros.ros.node.parameters import declare_parameters, read_settings
from vltseg_ros.ros.node.scheduling import FrameScheduler, PendingFrame
from vltseg_ros.ros.node.settings import NodeSettings
from vltseg_ros.ros.node.transitions import transition

_THROTTLE = 5.0  # seconds between repeated log messages of one kind
UNKNOWN_LATENCY = -1.0
"""SegmentationInfo.end_to_end_latency of a frame stamped ahead of the node's clock."""
_Decoded = tuple[PendingFrame, np.ndarray, str, PreparedFrame]  # frame, image, order, inputs


class VLTSegNode(LifecycleNode):
    """The segmentation node; see the module docstring and docs/node.md."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vltseg_node", **kwargs)
        self._declare_errors = declare_parameters(self)
        self._settings: NodeSettings | None = None
        self._class_map: BoundClassMap | None = None  # bound to the model's classes when active
        self._segmenter: Segmenter | None = None
        self._scheduler: FrameScheduler | None = None
        self._worker: threading.Thread | None = None
        self._cameras: dict[str, CameraIO] = {}
        self._classes_pub = self._diagnostics_pub = self._diagnostics_timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- lifecycle ----------------------------------------------------------------------

    @transition("configure", "unconfigured", undo=lambda node: node._destroy_entities())
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters; create publishers."""
        settings, cameras = read_settings(self, self._declare_errors)
        if settings.outputs.class_map:  # the file is read now; bound to the model's classes
            read_class_map(settings.outputs.class_map)  # at activate
        output_qos = qos_profile(settings.qos.output)
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._cameras = {
            camera.name: CameraIO(self, camera, output_qos, latched) for camera in cameras
        }
        self._classes_pub = self.create_publisher(ClassSet, "classes", latched)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._start_diagnostics(settings.diagnostics_period)
        self._settings = settings
        model = settings.segmenter
        self.get_logger().info(
            f"configured: cameras {list(self._cameras)}, model {model.model!r}, checkpoint "
            f"{model.weights or 'none (RANDOM weights)'}, backend {model.resolved_backend}"
        )
        return TransitionCallbackReturn.SUCCESS

    @transition("activate", "inactive", undo=lambda node: node._stop())
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model, publish the class set, start the worker, subscribe."""
        settings = self._require_settings()
        self._segmenter = self._load_segmenter(settings)
        self._class_map = settings.outputs.load_class_map(self._segmenter.class_set)
        self._publish_classes(settings, self._segmenter, self._class_map)
        self._watch_shift(settings, self._segmenter)
        self._scheduler = FrameScheduler(
            {name: io.health for name, io in self._cameras.items()},
            settings.max_age,
            self._now,
            settings.batch_window,
        )
        self._worker = threading.Thread(target=self._work, name="vltseg-inference", daemon=True)
        self._worker.start()
        for camera in self._cameras.values():
            camera.subscribe(self, qos_profile(settings.qos.input), self._on_image)
        self.get_logger().info("active")
        return super().on_activate(state)

    @transition("deactivate", "active")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the worker (after its current batch) and free the model."""
        self._stop()
        return super().on_deactivate(state)

    @transition("cleanup", "inactive")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy publishers and timers; parameters are read again at the next configure."""
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    @transition("shutdown", "where it was")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything, from any state."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

    @transition("error recovery", "finalized")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after an error in a transition."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def shut_down(self) -> None:
        """The lifecycle shutdown from whatever primary state the node is in (finalized: nothing
        left to do); :meth:`release` when a transition is under way (a signal during the
        autostart). Call it with no executor spinning the node."""
        state = self._state_machine.current_state[1]
        if state in ("unconfigured", "inactive", "active"):
            self.trigger_shutdown()
        elif state != "finalized":
            self.release()

    def release(self) -> None:
        """Stop the worker, free the model, destroy the entities, without a transition (also
        for exits after the ROS context is gone)."""
        self._stop()
        self._destroy_entities()

    # ---- data path ------------------------------------------------------------------------

    def _on_image(self, camera: str, message: Image | CompressedImage) -> None:
        """Subscription callback: never waits on inference."""
        scheduler = self._scheduler
        if scheduler is not None:
            stamp = message.header.stamp
            scheduler.submit(camera, message, stamp.sec + stamp.nanosec * 1e-9)

    def _work(self) -> None:
        scheduler = self._scheduler
        while scheduler is not None and not scheduler.closed:
            batch = scheduler.next_batch(timeout=0.2)
            if batch:
                self._process(batch)

    def _process(self, batch: list[PendingFrame]) -> None:
        """Decode, segment as one batch, publish; bad frames and failures are counted."""
        # one consistent view of the live settings for the whole batch
        settings, class_map, segmenter = self._require_settings(), self._class_map, self._segmenter
        if segmenter is None:
            return
        frames = [f for pending in batch if (f := self._prepare(pending, segmenter)) is not None]
        if not frames:
            return
        start = time.perf_counter()
        results = self._infer(segmenter, settings, class_map, frames)
        inference = time.perf_counter() - start
        for (pending, image, order, _), result in zip(frames, results, strict=True):
            if result is None:  # inference failed: counted and logged by _infer
                continue
            camera = self._cameras[pending.camera]
            try:
                latency = self._latency(pending, camera)
                outputs = frame_outputs(
                    result,
                    image,
                    order,
                    settings.outputs,
                    class_set=segmenter.class_set,
                    class_map=class_map,
                    with_overlay=camera.overlay_wanted,
                    with_anomaly=camera.anomaly_wanted,
                    shift_score=camera.health.frame_statistics(
                        pending.stamp or pending.received,
                        result.summary.mean_confidence,
                        result.summary.anomaly_fraction or 0.0,
                        result.summary.class_fraction,
                    ),
                    camera=pending.camera,
                    model=segmenter.config.name,
                    checkpoint=segmenter.checkpoint,
                    inference_latency=inference,
                    end_to_end_latency=UNKNOWN_LATENCY if latency is None else latency,
                    batch_frames=len(frames),
                )
                header = pending.message.header
                camera.publish(output_messages(outputs, header), header)
                camera.health.published(latency, inference)
            except Exception as exc:  # a failed publish must not stop the worker
                if not self.context.ok():  # the process is shutting down: no fault of the frame
                    return
                camera.health.failed(f"publishing failed: {exc}")
                self.get_logger().error(
                    f"{pending.camera}: publishing failed: {exc}", throttle_duration_sec=_THROTTLE
                )

    def _latency(self, pending: PendingFrame, camera: CameraIO) -> float | None:
        """Seconds from the frame's header stamp to now, or None (unknown) when the stamp is
        ahead of the node's clock: counted as a clock mismatch, and logged once."""
        now = self._now()
        if pending.clock_mismatch(now):
            ahead = pending.ahead(now)
            camera.health.clock_mismatch(ahead)
            self.get_logger().warning(
                f"{pending.camera}: header stamps are {ahead:.1f} s ahead of the node's clock: "
                "clock mismatch (use_sim_time?); end_to_end_latency reported as -1 (unknown)",
                once=True,
            )
        return pending.latency(now)

    def _prepare(self, pending: PendingFrame, segmenter: Segmenter) -> _Decoded | None:
        """The frame decoded, checked and cut into network inputs; None for a bad frame
        (counted and logged)."""
        try:
            image, order = decode(pending.message, self._require_settings().max_image_pixels)
            return pending, image, order, segmenter.prepare(image, order)
        except InvalidImageError as exc:
            self._cameras[pending.camera].health.bad_input(str(exc))
            self.get_logger().warning(
                f"{pending.camera}: skipped a bad frame: {exc}", throttle_duration_sec=_THROTTLE
            )
            return None

    def _infer(
        self,
        segmenter: Segmenter,
        settings: NodeSettings,
        class_map: BoundClassMap | None,
        frames: list[_Decoded],
    ) -> list[SegmentationResult | None]:
        """Segment the frames as one batch; None for each frame whose inference failed (logged
        and counted as an error of its camera). When a batch of several frames fails, each
        runs again alone, so that one camera's frame cannot fail the other cameras'."""
        options = settings.outputs.predict_options(class_map)
        options["return_anomaly"] = any(self._cameras[f[0].camera].anomaly_wanted for f in frames)
        try:
            return list(segmenter.predict_frames([f[3] for f in frames], **options))
        except Exception as exc:  # the engine's, CUDA's or a bug: never the worker's end
            if len(frames) == 1:
                return [self._inference_failed(frames[0][0].camera, exc)]
            self.get_logger().warning(
                f"inference of {len(frames)} frames in one batch failed "
                f"({type(exc).__name__}: {exc}); running each frame alone",
                throttle_duration_sec=_THROTTLE,
            )
        results: list[SegmentationResult | None] = []
        for pending, _, _, prepared in frames:
            try:
                results.extend(segmenter.predict_frames([prepared], **options))
            except Exception as exc:
                results.append(self._inference_failed(pending.camera, exc))
        return results

    def _inference_failed(self, camera: str, error: Exception) -> None:
        reason = f"inference failed: {type(error).__name__}: {error}"
        self._cameras[camera].health.failed(reason)
        self.get_logger().error(
            f"{camera}: {reason}; frame skipped", throttle_duration_sec=_THROTTLE
        )

    # ---- helpers --------------------------------------------------------------------------

    def _load_segmenter(self, settings: NodeSettings) -> Segmenter:
        started = time.perf_counter()
        what = "loading and warming up the model"
        engine = settings.segmenter
        if engine.resolved_backend == "onnxruntime" and engine.device.startswith("cuda"):
            what += " (a first TensorRT engine build takes minutes)"
        self.get_logger().info(f"{what} ...")
        with heartbeat(self.get_logger(), what):
            segmenter = settings.segmenter.load()
            if settings.warmup:
                segmenter.warm_up()  # a non-finite output fails activation with the reason
        self.get_logger().info(
            f"model {segmenter.config.name!r} ready in {time.perf_counter() - started:.1f} s: "
            f"{segmenter.description}"
        )
        return segmenter

    def _watch_shift(self, settings: NodeSettings, segmenter: Segmenter) -> None:
        """Give every camera a domain-shift monitor against the checkpoint's calibration."""
        healths = [camera.health for camera in self._cameras.values()]
        level, message = watch_shift(healths, segmenter.config.calibration, settings)
        if level:
            getattr(self.get_logger(), level)(message)

    def _publish_classes(
        self, settings: NodeSettings, segmenter: Segmenter, class_map: BoundClassMap | None
    ) -> None:
        """The class set (/classes) and every camera's LabelInfo: the classes the masks hold
        (the class map's when one is set) and the confidence threshold in force."""
        stamp = self.get_clock().now().to_msg()
        classes = class_map.classes if class_map is not None else segmenter.class_set
        self._classes_pub.publish(class_set_message(classes, stamp))
        labels = label_info_message(
            label_entries(segmenter.class_set, class_map),
            settings.outputs.confidence_threshold,
            stamp,
        )
        for camera in self._cameras.values():
            camera.label_info.publish(labels)

    def _start_diagnostics(self, period: float) -> None:
        """(Re)start the /diagnostics timer; wall-clock period, so that diagnostics keep
        flowing when a replay's /clock stops."""
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        self._diagnostics_timer = self.create_timer(
            period, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Live parameters take effect at once; any other parameter of the node is refused
        while it is configured or active (it is read at configure), with the reason. Before
        configure everything is accepted (the descriptors check types and ranges)."""
        settings = self._settings
        if settings is None:
            return SetParametersResult(successful=True)
        try:
            change = live_change(
                settings, list(self._cameras), parameters, self._segmenter, self._class_map
            )
        except VLTSegError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if change is not None:
            self._apply(change)
        return SetParametersResult(successful=True)

    def _apply(self, change: LiveChange) -> None:
        """Put live settings in force: the next frame uses them; diagnostics period, shift
        monitors, class set and LabelInfo follow when what they depend on changed."""
        old, new = change.old, change.new
        self._settings, self._class_map = new, change.class_map
        self.get_logger().info(f"parameters in force from the next frame: {change.describe()}")
        if new.diagnostics_period != old.diagnostics_period:
            self._start_diagnostics(new.diagnostics_period)
        segmenter = self._segmenter
        if segmenter is None:  # inactive: activate binds the class map and publishes
            return
        watched = ("anomaly_method", "threshold", "class_map")  # the shift score's terms
        if any(getattr(new.outputs, k) != getattr(old.outputs, k) for k in watched):
            self._watch_shift(new, segmenter)
        published = ("class_map", "confidence_threshold")
        if any(getattr(new.outputs, k) != getattr(old.outputs, k) for k in published):
            self._publish_classes(new, segmenter, self._class_map)

    def _stop(self) -> None:
        for camera in self._cameras.values():
            camera.unsubscribe(self)
        if self._scheduler is not None:
            self._scheduler.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._scheduler, self._worker = None, None
        self._class_map = None
        segmenter, self._segmenter = self._segmenter, None
        if segmenter is not None:
            segmenter.close()

    def _destroy_entities(self) -> None:
        for camera in self._cameras.values():
            camera.destroy(self)
        self._cameras = {}
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
        for publisher in (self._classes_pub, self._diagnostics_pub):
            if publisher is not None:
                self.destroy_publisher(publisher)
        self._classes_pub = self._diagnostics_pub = self._diagnostics_timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._settings = None

    def _publish_diagnostics(self) -> None:
        settings = self._settings
        if settings is None or self._diagnostics_pub is None:
            return
        healths = {name: camera.health for name, camera in self._cameras.items()}
        statuses = node_statuses(self.get_name(), settings, self._segmenter, healths)
        stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(DiagnosticArray(header=Header(stamp=stamp), status=statuses))

    def _require_settings(self) -> NodeSettings:
        if self._settings is None:
            raise RuntimeError("node is not configured")
        return self._settings

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run vltseg_ros vltseg_node`` (:func:`launcher.run_node`)."""
    run_node(VLTSegNode, args)


if __name__ == "__main__":
    main()
