"""Before a replay publishes a frame: the node must be *active* and the recorder listening.

:func:`wait_until_active` waits until a lifecycle node (vltseg_node) is *active*, robustly: its
``get_state`` service asked again every few seconds until it answers.

Fast DDS can lose a service request or response while discovery is still under way (a slow or
loaded machine: the client sees the service before the service has matched the client's reply
reader); a single request, as launch_ros's ``ChangeState`` makes, may then wait forever. And
during its ``autostart`` the node answers only once its model is loaded (which can take
minutes), so the answer is its state after start-up.

The recorder publishes ``True`` on its ``~/ready`` topic (:data:`READY_TOPIC`, latched) once the
node's mask and info publishers have matched its subscriptions; :func:`wait_for_ready` waits
for it. Without that, a player started as soon as the node is active can publish frames whose
outputs reach the player but not yet the recorder (it discovered the node later).

Both wait on a helper node that an executor spins in another thread; the client and the
subscription they create on it stay until that node is destroyed (after its executor stopped):
destroying them while the executor spins can kill the executor's thread (see
:mod:`vltseg_ros.ros.node.spinning`). Both stop at once, with the reason, when ``gone`` says
that waiting is pointless (the node's process exited, the executor's thread died).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lifecycle_msgs.srv import GetState
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool

from vltseg_ros.errors import VLTSegError

RETRY_S = 3.0
"""Seconds between ``get_state`` requests."""
READY_TOPIC = "~/ready"
"""The recorder's readiness topic (std_msgs/Bool, reliable, transient local), relative to it:
``/vltseg_replay_recorder/ready``."""
READY_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class ReplayError(VLTSegError):
    """A live replay failed: the node process exited or did not become active, or the bag could
    not be played."""


def wait_until_active(
    helper: Node,
    node: str,
    *,
    gone: Callable[[], str | None] = lambda: None,
    details: Callable[[], str] = lambda: "see its log",
    timeout: float = 900.0,
) -> None:
    """Return once ``node`` (``/vltseg_node``) answers ``get_state`` with *active*.

    Args:
        helper: a node of this process that an executor spins (in another thread); its
            ``get_state`` client stays until it is destroyed.
        node: the lifecycle node's fully qualified name.
        gone: why waiting is pointless ("vltseg_node exited with code 1", "the rclpy executor
            thread died: ..."), or None while it is not.
        details: text for the errors (the end of the node's log).
        timeout: seconds to wait in all.

    Raises:
        ReplayError: ``gone`` reported, ``timeout`` passed, or the node answered another state
            (its autostart failed, e.g. a missing checkpoint).
    """
    # No wait_for_service first: Fast DDS can keep the endpoints of a node process that died
    # (seen after SIGKILL) in the graph, matched on one side only, and then rmw reports the
    # service unavailable for good although a live server answers. Requests are simply repeated.
    client = helper.create_client(GetState, f"{node}/get_state")
    deadline = time.monotonic() + timeout
    futures: list = []
    next_request = 0.0
    try:
        while not any(future.done() for future in futures):
            now = time.monotonic()
            if reason := gone():
                raise ReplayError(f"{node} is not active ({reason}): {details()}")
            if now > deadline:
                raise ReplayError(f"{node} did not answer in {timeout:.0f} s: {details()}")
            if now >= next_request:
                futures.append(client.call_async(GetState.Request()))
                next_request = now + RETRY_S
            time.sleep(0.05)
    finally:
        for future in futures:
            if not future.done():
                client.remove_pending_request(future)
    state = next(future for future in futures if future.done()).result().current_state.label
    if state != "active":
        raise ReplayError(f"{node} is {state}, not active: {details()}")


def wait_for_ready(
    helper: Node,
    topic: str,
    timeout: float = 900.0,
    *,
    gone: Callable[[], str | None] = lambda: None,
) -> None:
    """Return once ``True`` arrived on ``topic`` (a recorder's ``READY_TOPIC``, fully named).

    Args:
        helper: a node of this process that an executor spins (in another thread); the
            subscription stays until it is destroyed.
        gone: as for :func:`wait_until_active`.

    Raises:
        ReplayError: nothing arrived in ``timeout`` s, or ``gone`` reported.
    """
    ready = threading.Event()
    helper.create_subscription(Bool, topic, lambda msg: msg.data and ready.set(), READY_QOS)
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if reason := gone():
            raise ReplayError(f"stopped waiting for a recorder on {topic}: {reason}")
        if time.monotonic() > deadline:
            raise ReplayError(f"no recorder reported ready on {topic} in {timeout:.0f} s")
