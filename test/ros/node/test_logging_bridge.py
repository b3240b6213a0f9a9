"""The core's ``logging`` records reach the node's ROS logger; long steps log a heartbeat."""

from __future__ import annotations

import logging
import time

from vltseg_ros.ros.node.logging_bridge import core_logs_to, heartbeat


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
