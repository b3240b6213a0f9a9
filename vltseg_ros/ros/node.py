"""``vltseg_node``: camera images in, semantic masks and per-class confidence out.

A lifecycle node. configure: read and validate parameters, create publishers. activate: load
the model, warm it up, publish the class set, start the inference worker, subscribe.
deactivate: unsubscribe, stop the worker, free the model (and GPU memory). cleanup: destroy
publishers. With ``autostart`` (default) a plain ``ros2 run`` brings it to active.

Subscription callbacks only hand messages to the :class:`FrameScheduler`; one worker thread
decodes, runs the newest frame of every camera as one batch, and publishes. The node only
translates: the segmentation itself is :class:`vltseg_ros.inference.predictor.Segmenter`.
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
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from vltseg_ros.config import DEFAULT_MODEL
from vltseg_ros.errors import InvalidImageError, VLTSegError
from vltseg_ros.inference.predictor import SegmentationResult, Segmenter
from vltseg_ros.inference.preprocess import validate_image
from vltseg_ros.msg import ClassSet
from vltseg_ros.ros.camera_io import BatchContext, CameraIO, decode
from vltseg_ros.ros.diagnostics import camera_status, engine_status
from vltseg_ros.ros.logging_bridge import core_logs_to, heartbeat
from vltseg_ros.ros.messages import class_set_message
from vltseg_ros.ros.parameters import NodeSettings, declare_parameters, read_settings
from vltseg_ros.ros.scheduling import CameraCounters, FrameScheduler, PendingFrame

_THROTTLE = 5.0  # seconds between repeated log messages of one kind
_Transition = Callable[["VLTSegNode", LifecycleState], TransitionCallbackReturn]


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
    """The segmentation node; see the module docstring and README for topics / parameters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("vltseg_node", **kwargs)
        self._declare_errors = declare_parameters(self)
        self._settings: NodeSettings | None = None
        self._segmenter: Segmenter | None = None
        self._scheduler: FrameScheduler | None = None
        self._worker: threading.Thread | None = None
        self._cameras: dict[str, CameraIO] = {}
        self._classes_pub = None
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._reported_drops: dict[str, int] = {}

    # ---- lifecycle ----------------------------------------------------------------------

    @_transition("configure", "unconfigured", undo=lambda node: node._destroy_entities())
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Read and validate parameters; create publishers."""
        settings = read_settings(self, self._declare_errors)
        self._settings = settings
        self._cameras = {
            cam.name: CameraIO.create(self, cam, settings) for cam in settings.cameras
        }
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
        self.get_logger().info(
            f"configured: cameras {[c.name for c in settings.cameras]}, model "
            f"{settings.model!r}, checkpoint {settings.checkpoint or 'none (RANDOM weights)'}, "
            f"backend {settings.backend}"
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
        self._scheduler = FrameScheduler(
            [c.name for c in settings.cameras], settings.max_age, self._now, settings.batch_window
        )
        self._worker = threading.Thread(target=self._work, name="vltseg-inference", daemon=True)
        self._worker.start()
        for camera in self._cameras.values():
            camera.subscribe(self, settings.input_qos, self._on_image)
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
        self._stop()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    @_transition("error recovery", "finalized")
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Recover to unconfigured after an error in a transition."""
        self._stop()
        self._destroy_entities()
        return TransitionCallbackReturn.SUCCESS

    # ---- data path ------------------------------------------------------------------------

    def _on_image(self, camera: str, message: Image | CompressedImage) -> None:
        """Subscription callback: never waits on inference."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        self._cameras[camera].stats.input()
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
        decoded = [d for frame in batch if (d := self._decode(frame, segmenter)) is not None]
        if not decoded:
            return
        frames, images, orders = zip(*decoded, strict=True)
        start = time.perf_counter()
        results = self._infer(segmenter, settings, frames, images, orders)
        context = BatchContext(
            settings=settings,
            class_set=segmenter.class_set,
            model_name=segmenter.config.name,
            checkpoint=settings.checkpoint,
            inference=time.perf_counter() - start,
            frames=len(frames),
            now=self._now,
        )
        for frame, image, order, result in zip(frames, images, orders, results, strict=True):
            if result is None:  # inference failed: counted and logged by _infer
                continue
            camera = self._cameras[frame.camera]
            try:
                camera.publish(frame, image, order, result, context)
            except Exception as exc:  # a failed publish must not stop the worker
                camera.stats.error(f"publishing failed: {exc}")
                self.get_logger().error(
                    f"{frame.camera}: publishing failed: {exc}", throttle_duration_sec=_THROTTLE
                )

    def _infer(
        self,
        segmenter: Segmenter,
        settings: NodeSettings,
        frames: tuple[PendingFrame, ...],
        images: tuple[np.ndarray, ...],
        orders: tuple[str, ...],
    ) -> list[SegmentationResult | None]:
        """Segment the frames as one batch; None for each frame whose inference failed (logged
        and counted as an error of its camera). When a batch of several frames fails, each
        runs again alone, so that one camera's frame cannot fail the other cameras'."""

        def predict(indices: range | list[int]) -> list[SegmentationResult]:
            return segmenter.predict_batch(
                [images[i] for i in indices],
                [orders[i] for i in indices],
                confidence_threshold=settings.confidence_threshold,
                output_size="model" if settings.output_resolution == "model" else None,
                resize=settings.upsample,
                summarize=True,
            )

        try:
            return list(predict(range(len(frames))))
        except Exception as exc:  # the engine's, CUDA's or a bug: never the worker's end
            if len(frames) == 1:
                self._inference_failed(frames[0], exc)
                return [None]
            self.get_logger().warning(
                f"inference of {len(frames)} frames in one batch failed "
                f"({type(exc).__name__}: {exc}); running each frame alone",
                throttle_duration_sec=_THROTTLE,
            )
        results: list[SegmentationResult | None] = []
        for index, frame in enumerate(frames):
            try:
                results.extend(predict([index]))
            except Exception as exc:
                self._inference_failed(frame, exc)
                results.append(None)
        return results

    def _inference_failed(self, frame: PendingFrame, error: Exception) -> None:
        reason = f"inference failed: {type(error).__name__}: {error}"
        self._cameras[frame.camera].stats.error(reason)
        self.get_logger().error(
            f"{frame.camera}: {reason}; frame skipped", throttle_duration_sec=_THROTTLE
        )

    def _decode(
        self, frame: PendingFrame, segmenter: Segmenter
    ) -> tuple[PendingFrame, np.ndarray, str] | None:
        """(frame, uint8 (H, W, 3) image, color order), or None for a bad frame (counted)."""
        try:
            image, order = decode(frame.message, self._require_settings().max_image_pixels)
            validate_image(image, segmenter.patch_size)
        except InvalidImageError as exc:
            self._cameras[frame.camera].stats.bad_input(str(exc))
            self.get_logger().warning(
                f"{frame.camera}: skipped a bad frame: {exc}", throttle_duration_sec=_THROTTLE
            )
            return None
        return frame, image, order

    # ---- helpers --------------------------------------------------------------------------

    def release(self) -> None:
        """Stop the worker and free the model without a lifecycle transition (for exits after
        the ROS context is gone)."""
        self._stop()

    def _load_segmenter(self, settings: NodeSettings) -> Segmenter:
        started = time.perf_counter()
        what = "loading and warming up the model"
        if settings.backend == "onnxruntime" and settings.device.startswith("cuda"):
            what += " (a first TensorRT engine build takes minutes)"
        self.get_logger().info(f"{what} ...")
        with heartbeat(self.get_logger(), what):
            segmenter = Segmenter.load(
                settings.model or (None if settings.checkpoint else DEFAULT_MODEL),
                settings.checkpoint or None,
                backend=settings.backend,
                device=settings.device,
                precision=settings.precision,
                batch_size=settings.batch_size,
                **settings.engine_options(),
            )
            segmenter.inference = settings.inference_for(segmenter.inference)
            if settings.warmup:
                height, width = segmenter.inference.input_size
                segmenter.predict(np.zeros((height, width, 3), np.uint8))
        self.get_logger().info(
            f"model {segmenter.config.name!r} ready in {time.perf_counter() - started:.1f} s: "
            f"{segmenter.description}"
        )
        return segmenter

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
        counters = self._scheduler.counters() if self._scheduler is not None else {}
        statuses = [engine_status(self.get_name(), settings, self._segmenter)]
        for name, camera in self._cameras.items():
            snapshot = camera.stats.snapshot()
            count = counters.get(name, CameraCounters())
            drops = count.dropped_stale + snapshot.bad_input
            statuses.append(
                camera_status(
                    self.get_name(),
                    name,
                    snapshot,
                    count,
                    drops - self._reported_drops.get(name, 0),
                )
            )
            self._reported_drops[name] = drops
        self._diagnostics_pub.publish(
            DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()), status=statuses)
        )

    def _require_settings(self) -> NodeSettings:
        if self._settings is None:
            raise RuntimeError("node is not configured")
        return self._settings

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9


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
