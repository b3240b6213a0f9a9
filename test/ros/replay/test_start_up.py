"""The live replay's start-up under load, and what happens when its executor thread dies.

``wait_until_active`` and ``wait_for_ready`` used to destroy their client and subscription from
the calling thread while a MultiThreadedExecutor spun the helper node in another one: under
load the executor touched the destroyed entity (``InvalidHandle: cannot use Destroyable because
destruction was requested``, ros2/rclpy#1284), its thread died, and ``make demo`` waited for
ever. Here both run many times in a row with the executor spinning, a busy thread loading the
CPU and the interpreter switching threads as often as it can (which made the old code fail
within a few dozen rounds); a dead executor thread then stops every wait with its reason.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest
from rclpy.lifecycle import LifecycleNode
from rclpy.node import Node
from std_msgs.msg import Bool

from vltseg_ros.ros.node.spinning import Spinner
from vltseg_ros.ros.replay.readiness import (
    READY_QOS,
    ReplayError,
    wait_for_ready,
    wait_until_active,
)

ROUNDS = 40
READY = "/stress_recorder/ready"


@pytest.fixture
def busy_interpreter():
    """A thread burning CPU, and thread switches as often as the interpreter allows."""
    interval = sys.getswitchinterval()
    stop = threading.Event()

    def burn() -> None:
        while not stop.is_set():
            sum(range(2000))

    thread = threading.Thread(target=burn, daemon=True)
    thread.start()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        thread.join()


def test_the_readiness_waits_never_kill_the_spinning_executor(ros, busy_interpreter) -> None:
    target = LifecycleNode("stress_target")
    target.trigger_configure()
    target.trigger_activate()
    recorder = Node("stress_recorder")
    recorder.create_publisher(Bool, READY, READY_QOS).publish(Bool(data=True))
    traffic = recorder.create_publisher(Bool, "/stress_traffic", 10)
    recorder.create_timer(0.002, lambda: traffic.publish(Bool(data=True)))
    helper = Node("stress_helper")
    for _ in range(10):  # more entities for the executor to walk through in every round
        helper.create_subscription(Bool, "/stress_traffic", lambda message: None, 10)
    spinner = Spinner([target, recorder, helper]).start()
    started = time.monotonic()
    try:
        for round_ in range(ROUNDS):
            wait_until_active(helper, "/stress_target", gone=spinner.failure, timeout=30)
            wait_for_ready(helper, READY, timeout=30, gone=spinner.failure)
            assert spinner.failure() is None, f"round {round_}: {spinner.failure()}"
        assert not spinner.wait(0.2), "the executor thread ended"
    finally:
        spinner.stop()
        for node in (target, recorder, helper):
            node.destroy_node()
    assert spinner.failure() is None
    assert time.monotonic() - started < 60


def test_a_dead_executor_thread_stops_the_waits_with_its_reason(ros) -> None:
    helper = Node("dying_helper")
    reasons: list[str] = []
    spinner = Spinner([helper], on_failure=reasons.append).start()

    def explode() -> None:
        raise RuntimeError("injected fault")

    try:
        trigger = helper.create_timer(0.3, explode)
        assert spinner.wait(10), "the executor thread did not end"
        expected = "the rclpy executor thread died: RuntimeError: injected fault"
        assert spinner.failure() == expected and reasons == [expected]
        started = time.monotonic()
        with pytest.raises(ReplayError, match="executor thread died: RuntimeError"):
            wait_for_ready(helper, READY, timeout=60, gone=spinner.failure)
        with pytest.raises(ReplayError, match="executor thread died: RuntimeError"):
            wait_until_active(helper, "/nobody", gone=spinner.failure, timeout=60)
        assert time.monotonic() - started < 5
        helper.destroy_timer(trigger)  # the executor is gone: safe from this thread
    finally:
        spinner.stop()
        helper.destroy_node()


def test_a_stopped_spinner_reports_no_failure(ros) -> None:
    helper = Node("calm_helper")
    spinner = Spinner([helper]).start()
    assert not spinner.wait(0.3)
    spinner.stop()
    assert spinner.wait(0) and spinner.failure() is None
    helper.destroy_node()
