"""The ML core's Python ``logging`` and rclpy's warnings in the node's ROS log, and a heartbeat
for long steps.

The core logs with ``logging`` (it never imports ROS); in the node process those records
(e.g. ONNX Runtime's "building the TensorRT engine, this takes minutes") must reach
``/rosout`` and the console through the node's logger like every other node message. rclpy
reports some middleware failures only as Python warnings, which Python prints once per process
to stderr; the node logs each one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

CORE_LOGGER = "vltseg_ros"


class RosLogHandler(logging.Handler):
    """Forwards ``logging`` records to an rclpy logger (``node.get_logger()``)."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.INFO)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = f"[{record.name}] {record.getMessage()}"
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(message)
            else:
                self._ros_logger.info(message)
        except Exception:  # a logging failure must never take the node down
            self.handleError(record)


@contextlib.contextmanager
def core_logs_to(ros_logger: Any) -> Iterator[RosLogHandler]:
    """While the block runs, INFO and above of the ``vltseg_ros`` loggers go to ``ros_logger``
    (and not also to Python's last-resort stderr handler)."""
    core = logging.getLogger(CORE_LOGGER)
    handler = RosLogHandler(ros_logger)
    saved = core.level, core.propagate
    core.addHandler(handler)
    core.setLevel(logging.INFO)
    core.propagate = False
    try:
        yield handler
    finally:
        core.removeHandler(handler)
        core.setLevel(saved[0])
        core.propagate = saved[1]


DROPPED_ANSWER = (
    "a service client will wait for ever: the middleware dropped this node's answer (it had not "
    "matched that client yet); a `ros2 lifecycle set` or `ros2 param` waiting now can be stopped "
    "and typed again (docs/node.md)"
)


@contextlib.contextmanager
def rclpy_warnings_to(ros_logger: Any) -> Iterator[None]:
    """While the block runs, every warning raised in rclpy's code goes to ``ros_logger`` as
    one WARN line, each time it happens (Python's default: once per process, to stderr only).
    rclpy's "failed to send response (timeout)" (rmw_fastrtps gave up waiting to match the
    client's reply reader) gets what it means for the client (:data:`DROPPED_ANSWER`). Other
    warnings are shown as before."""
    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=r"rclpy(\.|$)")
        shown = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if "rclpy" not in Path(filename).parts:
                shown(message, category, filename, lineno, file, line)
                return
            text = f"rclpy: {category.__name__}: {message}"
            if "failed to send response" in str(message):
                text += f": {DROPPED_ANSWER}"
            ros_logger.warning(text)

        warnings.showwarning = show
        yield


@contextlib.contextmanager
def heartbeat(ros_logger: Any, what: str, period: float = 30.0) -> Iterator[None]:
    """Log "still <what> (N s)" every ``period`` seconds until the block ends, so that a long
    step (a model load, a first TensorRT engine build) never looks like a hang."""
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(period):
            ros_logger.info(f"still {what} ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=beat, name="vltseg-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
