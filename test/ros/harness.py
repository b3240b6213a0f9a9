"""Running vltseg_node in its own process and talking to it from the test process."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from test.conftest import private_domain_id
from vltseg_ros.ros.node.transport import large_data_environment
from vltseg_ros.ros.replay.live import node_command, write_params_file

NODE = "vltseg_node"
# Peer.publisher's history depth: the longest burst a test publishes.
BURST = 30
# Peer.lifecycle: how long an answer may take before the node's state is asked (a configure
# loads a model: seconds).
ANSWER_WAIT = 10.0
READY_WAIT = 20.0  # Peer._ready_client: how long one client may take to find the service
# The transitions the tests request (by name, as `ros2 lifecycle set` types them): the id, the
# state each starts from and the one it leads to; and the states in between.
TRANSITIONS = {
    "configure": (Transition.TRANSITION_CONFIGURE, "unconfigured", "inactive"),
    "cleanup": (Transition.TRANSITION_CLEANUP, "inactive", "unconfigured"),
    "activate": (Transition.TRANSITION_ACTIVATE, "inactive", "active"),
    "deactivate": (Transition.TRANSITION_DEACTIVATE, "active", "inactive"),
}
TARGET_STATE = {transition: target for transition, _, target in TRANSITIONS.values()}
TRANSITIONAL_STATES = {
    "configuring", "cleaningup", "activating", "deactivating", "shuttingdown", "errorprocessing"
}  # fmt: skip


def ros_environment(tmp_path: Path) -> dict[str, str]:
    """Environment for the node process and this one: private domain, logs in tmp, large data."""
    return {
        "ROS_DOMAIN_ID": private_domain_id(),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(tmp_path / "ros_log"),
        "ROS_HOME": str(tmp_path / "ros_home"),
        **large_data_environment(),
    }


class NodeProcess:
    """vltseg_node in a subprocess, configured by a params file; stderr kept for asserts."""

    def __init__(
        self,
        tmp_path: Path,
        params: dict[str, Any],
        env: dict[str, str],
        ros_args: list[str] | None = None,
    ) -> None:
        """``ros_args`` follow ``--params-file <params>``: remaps, more params files (a later
        file wins), as a launch file passes them."""
        params_file = write_params_file(tmp_path, params)
        self.log_path = tmp_path / "node.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            node_command(params_file, ros_args or ()),
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (rclpy shuts down cleanly), SIGKILL after 15 s; prints the end of the node's
        output (pytest shows it when the test failed)."""
        print(f"--- the end of vltseg_node's output ---\n{self.log()[-4000:]}")
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


class Peer:
    """The test's own ROS node: publishes camera frames, records the node's outputs."""

    def __init__(self) -> None:
        self.node = Node("vltseg_test_peer")
        self.received: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()
        self._publishers: dict[str, Any] = {}

    def add(self, node: Node) -> None:
        """Spin ``node`` (e.g. a vltseg_node in this process) with the peer's executor."""
        self._executor.add_node(node)

    def remove(self, node: Node) -> None:
        self._executor.remove_node(node)

    def listen(self, topic: str, msg_type: type, qos: Any = 10) -> None:
        """Record every message on ``topic``."""

        def store(msg: Any) -> None:
            with self._lock:
                self.received[topic].append(msg)

        self.node.create_subscription(msg_type, topic, store, qos)

    def messages(self, topic: str) -> list[Any]:
        with self._lock:
            return list(self.received[topic])

    def publisher(self, topic: str, msg_type: type) -> Any:
        if topic not in self._publishers:
            # Reliable with room for a burst, so a reliable subscriber (the qos.input override)
            # with that depth gets every frame (depth 1 may replace a frame not yet delivered);
            # a best-effort subscriber still matches it.
            self._publishers[topic] = self.node.create_publisher(msg_type, topic, BURST)
        return self._publishers[topic]

    def wait_for_subscriber(self, topic: str, msg_type: type, timeout: float = 60.0) -> None:
        """Block until the node subscribed to ``topic`` (first messages are lost otherwise). The
        failure shows the subscribers this process's graph lists (discovered but not matched,
        or not discovered at all)."""
        publisher = self.publisher(topic, msg_type)
        wait_until(
            lambda: publisher.get_subscription_count() > 0,
            timeout,
            f"subscriber on {topic}",
            lambda: [
                f"{info.node_name} ({info.qos_profile.reliability.name})"
                for info in self.node.get_subscriptions_info_by_topic(topic)
            ],
        )

    def publish(self, topic: str, msg: Image | CompressedImage) -> None:
        self.publisher(topic, type(msg)).publish(msg)

    def header(self, frame_id: str, age: float = 0.0) -> Header:
        """A header stamped now (minus ``age`` seconds) on this node's clock."""
        now = self.node.get_clock().now().nanoseconds - int(age * 1e9)
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(now, 1_000_000_000)
        return header

    def diagnostics(self, camera: str) -> dict[str, str] | None:
        """Values of the newest diagnostics status of ``camera``."""
        for array in reversed(self.messages("/diagnostics")):
            for status in array.status:
                if status.name.endswith(f"camera {camera}"):
                    return {kv.key: kv.value for kv in status.values}
        return None

    def wait_for_diagnostics(self, camera: str, **expected: int) -> dict[str, str]:
        """The newest diagnostics of ``camera`` once its values equal ``expected``."""

        def matches() -> bool:
            values = self.diagnostics(camera) or {}
            return all(values.get(key) == str(value) for key, value in expected.items())

        wait_until(
            matches, 30, f"{camera} diagnostics {expected}", lambda: self.diagnostics(camera)
        )
        return self.diagnostics(camera)

    def lifecycle(self, transition: int, timeout: float = 60.0) -> bool:
        """Request a lifecycle transition of the node through its service; True on success.

        A request with no answer in :data:`ANSWER_WAIT` s was either taken (the node left its
        start state: the result is whether it reached the transition's target) or lost while
        the two processes discovered each other (test/ros/ros2_cli.py tells that story; still
        in the start state: sent again, as the CLI tests type ``lifecycle set`` again). When
        more than one request went out, a refusal means an earlier one was taken (the node
        refuses a transition from its target state): the state reached decides."""
        client = self._ready_client(ChangeState, "change_state", timeout)
        start = self.state(timeout)
        request = ChangeState.Request()
        request.transition.id = transition
        deadline = time.monotonic() + timeout
        futures = []
        while time.monotonic() < deadline:
            futures.append(client.call_async(request))
            end = min(deadline, time.monotonic() + ANSWER_WAIT)
            while not any(f.done() for f in futures) and time.monotonic() < end:
                time.sleep(0.02)
            answers = [f.result().success for f in futures if f.done()]
            if answers and (answers[0] or len(futures) == 1):
                return bool(answers[0])
            now = self._settled_state(deadline)
            if answers or now != start:
                return now == TARGET_STATE[transition]
        pytest.fail(f"no answer to transition {transition} in {timeout:.0f} s; in {start!r}")

    def state(self, timeout: float = 30.0) -> str:
        """The node's lifecycle state label. Asks again every 2 s: Fast DDS drops a service
        response while the server has not yet matched the client's reply reader."""
        client = self._ready_client(GetState, "get_state", timeout)
        futures = [client.call_async(GetState.Request())]
        deadline = time.monotonic() + timeout
        while not any(future.done() for future in futures):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for get_state")
            time.sleep(0.02)
            if time.monotonic() - 2.0 * len(futures) > deadline - timeout:
                futures.append(client.call_async(GetState.Request()))
        return next(f for f in futures if f.done()).result().current_state.label

    def _settled_state(self, deadline: float) -> str:
        """The node's state once it is not in a transition (configuring, activating, ...)."""
        while (label := self.state()) in TRANSITIONAL_STATES and time.monotonic() < deadline:
            time.sleep(0.5)
        return label

    def _ready_client(self, srv_type: type, service: str, timeout: float) -> Any:
        """A client of the node's ``service`` once it is ready. A client still not ready after
        :data:`READY_WAIT` s is replaced by a new one (new endpoints, announced anew), with a
        warning; the failure shows the services this process's graph lists for the node."""
        deadline = time.monotonic() + timeout
        waited = []
        while True:
            client = self.node.create_client(srv_type, f"/{NODE}/{service}")
            wait = min(READY_WAIT, deadline - time.monotonic())
            if client.wait_for_service(timeout_sec=wait):
                break
            # not destroyed: the spin thread may be waiting on it (InvalidHandle there)
            waited.append(f"{wait:.0f} s")
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"no {service} service in {timeout:.0f} s (clients tried: {waited}); the "
                    f"graph lists: {self._node_services()}"
                )
        if waited:
            warnings.warn(
                f"{service}: {len(waited)} client(s) not ready in {READY_WAIT:.0f} s, a new one "
                "was",
                stacklevel=3,
            )
        return client

    def _node_services(self) -> object:
        try:
            return self.node.get_service_names_and_types_by_node(NODE, "/")
        except Exception as error:  # a diagnostic (rclpy: NodeNameNonExistentError)
            return f"({error})"

    def close(self) -> None:
        """Stop spinning and wait for the spin thread (a thread still spinning when the test
        shuts rclpy down raises RCLError: the context is not valid), then destroy the node."""
        self._executor.shutdown()
        self._thread.join(timeout=10)
        self.node.destroy_node()


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll ``condition`` every 20 ms; fail the test after ``timeout`` seconds, showing
    ``state()`` if given."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = f"; state: {state()}" if state else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{shown}")
        time.sleep(0.02)


def camera_frame(height: int = 1024, width: int = 2048) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a real Cityscapes frame when ../shared/data has one, else synthetic."""
    import cv2

    from test.conftest import SHARED_FRAMES

    path = SHARED_FRAMES / "cityscapes_frankfurt_000001_055709_leftImg8bit.png"
    if path.is_file():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(cv2.resize(bgr, (width, height))[..., ::-1])
    from vltseg_ros.data.scenes import synthetic_street_scene

    return synthetic_street_scene(height, width, seed=1)[0]
