"""The core's ``logging`` records and rclpy's warnings reach the node's ROS logger; long steps
log a heartbeat."""

from __future__ import annotations

import logging
import time
import warnings

from vltseg_ros.ros.node.logging_bridge import (
    DROPPED_ANSWER,
    core_logs_to,
    heartbeat,
    rclpy_warnings_to,
)


class FakeRosLogger:
    """Records (level, message) like rclpy's logger methods would print them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def test_core_records_are_forwarded_by_level_and_only_while_installed() -> None:
    ros = FakeRosLogger()
    core = logging.getLogger("vltseg_ros.engines.onnxruntime_engine")
    with core_logs_to(ros):
        core.debug("not shown")
        core.info("built")
        core.warning("building the TensorRT engine")
        core.error("failed %d", 3)
        logging.getLogger("other.library").warning("not ours")
    core.warning("after the block")
    assert ros.lines == [
        ("info", "[vltseg_ros.engines.onnxruntime_engine] built"),
        ("warning", "[vltseg_ros.engines.onnxruntime_engine] building the TensorRT engine"),
        ("error", "[vltseg_ros.engines.onnxruntime_engine] failed 3"),
    ]
    assert logging.getLogger("vltseg_ros").propagate is True  # restored


def test_heartbeat_logs_while_a_step_runs_and_stops_after() -> None:
    ros = FakeRosLogger()
    with heartbeat(ros, "loading the model", period=0.05):
        time.sleep(0.28)
    beats = len(ros.lines)
    time.sleep(0.15)
    assert 3 <= beats <= 6 and len(ros.lines) == beats
    assert all(
        level == "info" and msg.startswith("still loading the model (") for level, msg in ros.lines
    )


def _rclpy_warning(message: str) -> None:
    """A RuntimeWarning as rclpy's C++ code raises it from ``Service.send_response`` (charged
    to the calling line of rclpy/service.py)."""
    warnings.warn_explicit(
        message, RuntimeWarning, "/venv/site-packages/rclpy/service.py", 78,
        module="rclpy.service", registry={},
    )  # fmt: skip


def test_every_rclpy_warning_is_logged_each_time_with_what_a_dropped_answer_means() -> None:
    ros = FakeRosLogger()
    dropped = "failed to send response (timeout): client will not receive response"
    with warnings.catch_warnings(record=True) as shown:  # where other warnings go
        warnings.simplefilter("default")
        with rclpy_warnings_to(ros):
            _rclpy_warning(dropped)
            _rclpy_warning(dropped)  # Python's default filter would drop the repeat
            _rclpy_warning("something else")
            warnings.warn_explicit("not rclpy's", UserWarning, "/src/other.py", 3, module="o")
    assert ros.lines == [
        ("warning", f"rclpy: RuntimeWarning: {dropped}: {DROPPED_ANSWER}"),
        ("warning", f"rclpy: RuntimeWarning: {dropped}: {DROPPED_ANSWER}"),
        ("warning", "rclpy: RuntimeWarning: something else"),
    ]
    assert [str(w.message) for w in shown] == ["not rclpy's"]  # shown as before
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        _rclpy_warning(dropped)
    assert len(ros.lines) == 3 and len(after) == 1  # the block's hook is gone
