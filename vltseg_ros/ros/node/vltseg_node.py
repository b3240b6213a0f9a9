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

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from vltseg_ros.errors import InvalidImageError, VLTSegError
from vltseg_ros.inference.domain_shift import ShiftMonitor
from vltseg_ros.inference.outputs import frame_outputs
from vltseg_ros.inference.predictor import PreparedFrame, SegmentationResult, Segmenter
from vltseg_ros.msg import ClassSet
from vltseg_ros.ros.node.camera_io import CameraIO, decode
from vltseg_ros.ros.node.compat import LifecycleNode
from vltseg_ros.ros.node.health import DiagnosticStatusWrapper, engine_status
from vltseg_ros.ros.node.logging_bridge import core_logs_to, heartbeat
from vltseg_ros.ros.node.messages import class_set_message, output_messages
from vltseg_ros.ros.node.parameters import declare_parameters, read_settings
from vltseg_ros.ros.node.scheduling import FrameScheduler, PendingFrame
from vltseg_ros.ros.node.settings import EndpointQos, NodeSettings

_THROTTLE = 5.0  # seconds between repeated log messages of one kind
_Transition = Callable[["VLTSegNode", LifecycleState], TransitionCallbackReturn]
_Decoded = tuple[PendingFrame, np.ndarray, str, PreparedFrame]  # frame, image, order, inputs


def _transition(
    name: str, stays: str, undo: Callable[[VLTSegNode], None] | None = None
) -> Callable[[_Transition], _Transition]:
    """Make a lifecycle callback log one ERROR line, ``undo`` what it did and fail on any
    exception (rclpy would swallow the exception without a word)."""

    def decorate(callback: _Transition) -> _Transition:
        @functools.wraps(callback)
        def run(node: VLTSegNode, state: LifecycleState) -> TransitionCallbackReturn:
            try:
                return callback(node, state)
            except Exception as exc:
                reason = exc if isinstance(exc, VLTSegError) else f"{type(exc).__name__}: {exc}"
                node.get_logger().error(f"{name} failed: {reason} (the node stays {stays})")
                if undo is not None:
                    undo(node)
                return TransitionCallbackReturn.FAILURE

        return run

    return decorate


class VLTSegNode(LifecycleNode):
    """The segmentation node; see the module docstring and docs/node.md."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vltseg_node", **kwargs)
        self._declare_errors = declare_parameters(self)
        self._settings: NodeSettings | None = None
        self._segmenter: Segmenter | None = None
        self._scheduler: FrameScheduler | None = None
        self._worker: threading.Thread | None = None
        self._cameras: dict[str, CameraIO] = {}
        self._classes_pub = self._diagnostics_pub = self._diagnostics_timer = None

    # ---- lifecycle ----------------------------------------------------------------------

    @_transition("configure", "unconfigured", undo=lambda node: node._destroy_entities())
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters; create publishers."""
        settings, cameras = read_settings(self, self._declare_errors)
        self._settings = settings
        output_qos = _qos(settings.qos.output)
        self._cameras = {camera.name: CameraIO(self, camera, output_qos) for camera in cameras}
        latched = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        self._classes_pub = self.create_publisher(ClassSet, "classes", latched)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Wall-clock period: diagnostics keep flowing when a replay's /clock stops.
        self._diagnostics_timer = self.create_timer(
            settings.diagnostics_period,
            self._publish_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )
        model = settings.segmenter
        self.get_logger().info(
            f"configured: cameras {list(self._cameras)}, model {model.model!r}, checkpoint "
            f"{model.checkpoint or 'none (RANDOM weights)'}, backend {model.resolved_backend}"
        )
        return TransitionCallbackReturn.SUCCESS

    @_transition("activate", "inactive", undo=lambda node: node._stop())
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and warm up the model, publish the class set, start the worker, subscribe."""
        settings = self._require_settings()
        self._segmenter = self._load_segmenter(settings)
        self._classes_pub.publish(
            class_set_message(self._segmenter.class_set, self.get_clock().now().to_msg())
        )
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
            camera.subscribe(self, _qos(settings.qos.input), self._on_image)
        self.get_logger().info("active")
        return super().on_activate(state)

    @_transition("deactivate", "active")
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe, stop the worker (after its current batch) and free the model."""
        self._stop()
        return super().on_deactivate(state)

    @_transition("cleanup", "inactive")
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy publishers and timers; parameters are read again at the next configure."""
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    @_transition("shutdown", "where it was")
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop everything, from any state."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

    @_transition("error recovery", "finalized")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after an error in a transition."""
        self.release()
        return TransitionCallbackReturn.SUCCESS

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
        settings, segmenter = self._require_settings(), self._segmenter
        if segmenter is None:
            return
        frames = [f for pending in batch if (f := self._prepare(pending, segmenter)) is not None]
        if not frames:
            return
        start = time.perf_counter()
        results = self._infer(segmenter, settings, frames)
        inference = time.perf_counter() - start
        for (pending, image, order, _), result in zip(frames, results, strict=True):
            if result is None:  # inference failed: counted and logged by _infer
                continue
            camera = self._cameras[pending.camera]
            try:
                latency = pending.age(self._now())
                outputs = frame_outputs(
                    result,
                    image,
                    order,
                    settings.outputs,
                    class_set=segmenter.class_set,
                    with_overlay=camera.overlay_wanted,
                    with_anomaly=camera.anomaly_wanted,
                    shift_score=camera.health.frame_statistics(
                        pending.stamp or pending.received,
                        result.summary.mean_confidence,
                        result.summary.anomaly_fraction or 0.0,
                    ),
                    camera=pending.camera,
                    model=segmenter.config.name,
                    checkpoint=settings.segmenter.checkpoint,
                    inference_latency=inference,
                    end_to_end_latency=latency,
                    batch_frames=len(frames),
                )
                header = pending.message.header
                camera.publish(output_messages(outputs, header), header)
                camera.health.published(latency, inference)
            except Exception as exc:  # a failed publish must not stop the worker
                camera.health.failed(f"publishing failed: {exc}")
                self.get_logger().error(
                    f"{pending.camera}: publishing failed: {exc}", throttle_duration_sec=_THROTTLE
                )

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
        self, segmenter: Segmenter, settings: NodeSettings, frames: list[_Decoded]
    ) -> list[SegmentationResult | None]:
        """Segment the frames as one batch; None for each frame whose inference failed (logged
        and counted as an error of its camera). When a batch of several frames fails, each
        runs again alone, so that one camera's frame cannot fail the other cameras'."""
        options = settings.outputs.predict_options()
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
                height, width = segmenter.inference.input_size
                segmenter.predict(np.zeros((height, width, 3), np.uint8))
        self.get_logger().info(
            f"model {segmenter.config.name!r} ready in {time.perf_counter() - started:.1f} s: "
            f"{segmenter.description}"
        )
        return segmenter

    def _watch_shift(self, settings: NodeSettings, segmenter: Segmenter) -> None:
        """Give every camera a domain-shift monitor against the checkpoint's calibration."""
        calibration, outputs = segmenter.config.calibration, settings.outputs
        method = (outputs.anomaly_method, outputs.anomaly_threshold)
        if calibration is None:
            self.get_logger().info(
                "domain-shift warning off: the checkpoint has no calibration (vltseg calibrate)"
            )
        elif not (same := method == (calibration.anomaly_method, calibration.anomaly_threshold)):
            self.get_logger().warning(
                f"anomaly_method / anomaly_threshold ({method[0]}, {method[1]:g}) differ from "
                f"the calibration's ({calibration.anomaly_method}, "
                f"{calibration.anomaly_threshold:g}): the domain-shift monitor compares mean "
                "confidence only"
            )
        for camera in self._cameras.values():
            monitor = None
            if calibration is not None:
                window, threshold = settings.shift_window, settings.shift_threshold
                monitor = ShiftMonitor(calibration, window, threshold, compare_anomaly=same)
            camera.health.watch_shift(monitor, "the checkpoint has no calibration")

    def _stop(self) -> None:
        for camera in self._cameras.values():
            camera.unsubscribe(self)
        if self._scheduler is not None:
            self._scheduler.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join()
        self._scheduler, self._worker = None, None
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
        self._settings = None

    def _publish_diagnostics(self) -> None:
        settings = self._settings
        if settings is None or self._diagnostics_pub is None:
            return
        engine = DiagnosticStatusWrapper(
            name=f"{self.get_name()}: engine", hardware_id=settings.segmenter.device
        )
        statuses = [engine_status(engine, settings.segmenter, self._segmenter)]
        for name, camera in self._cameras.items():
            stat = DiagnosticStatusWrapper(name=camera.health.name, hardware_id=name)
            statuses.append(camera.health.run(stat))
        self._diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=statuses)
        )

    def _require_settings(self) -> NodeSettings:
        if self._settings is None:
            raise RuntimeError("node is not configured")
        return self._settings

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9


def _qos(endpoint: EndpointQos) -> QoSProfile:
    best_effort = endpoint.reliability == "best_effort"
    return QoSProfile(
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        history=HistoryPolicy.KEEP_LAST,
        depth=endpoint.depth,
        durability=DurabilityPolicy.VOLATILE,
    )


def autostart(node: VLTSegNode) -> bool:
    """Configure, then activate; stop at the first failure (which has logged why). True when
    the node is active."""
    for trigger in (node.trigger_configure, node.trigger_activate):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            return False
    return True


def main(args: list[str] | None = None) -> None:
    """Entry point of ``ros2 run vltseg_ros vltseg_node``."""
    rclpy.init(args=args)
    node = VLTSegNode()
    try:
        with core_logs_to(node.get_logger()):
            if node.get_parameter("autostart").value:
                autostart(node)
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if rclpy.ok():
            node.trigger_shutdown()  # the lifecycle transition: stop the worker, free the model
        else:
            node.release()  # Ctrl-C already shut the context down: no transitions possible
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
