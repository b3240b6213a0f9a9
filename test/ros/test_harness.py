"""The test harness's own guard (test/ros/harness.py): a change_state request that got no answer
is sent again only when the node did not take it: a lost request is sent again, a request taken
whose answer was lost is not (the node's state tells which)."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")

from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.client import Client
from rclpy.task import Future

from test.ros import harness
from vltseg_ros.ros.node.compat import LifecycleNode


def _lose_first(monkeypatch: pytest.MonkeyPatch, what: str) -> list[int]:
    """The first ChangeState request of this process never gets an answer: with ``what`` =
    "request" it is not sent, with "answer" it is sent and its answer ignored. Returns the
    transition ids of every request sent."""
    real = Client.call_async
    sent: list[int] = []
    calls = 0

    def call_async(self: Client, request: object) -> Future:
        nonlocal calls
        if self.srv_type is not ChangeState:
            return real(self, request)
        calls += 1
        if calls == 1 and what == "request":
            return Future()  # never sent, never done
        sent.append(request.transition.id)
        future = real(self, request)
        return Future() if calls == 1 else future

    monkeypatch.setattr(Client, "call_async", call_async)
    monkeypatch.setattr(harness, "ANSWER_WAIT", 3.0)
    return sent


@pytest.fixture
def lifecycle_node(ros):
    peer, _ = ros
    node = LifecycleNode(harness.NODE)
    peer.add(node)
    yield peer
    # Not destroyed here: the peer's spin thread may still hold its handles (InvalidHandle
    # there); rclpy's shutdown at the end of the test destroys it.
    peer.remove(node)


def test_a_lost_request_is_sent_again(lifecycle_node, monkeypatch) -> None:
    sent = _lose_first(monkeypatch, "request")
    assert lifecycle_node.lifecycle(Transition.TRANSITION_CONFIGURE)
    assert sent[0] == Transition.TRANSITION_CONFIGURE  # the second request, the first was lost
    assert lifecycle_node.state() == "inactive"


def test_a_taken_request_is_not_sent_again(lifecycle_node, monkeypatch) -> None:
    sent = _lose_first(monkeypatch, "answer")
    assert lifecycle_node.lifecycle(Transition.TRANSITION_CONFIGURE)  # from the state reached
    assert sent == [Transition.TRANSITION_CONFIGURE]
    assert lifecycle_node.state() == "inactive"


def test_a_refused_request_stays_refused(lifecycle_node, monkeypatch) -> None:
    """Deactivate from unconfigured: the state does not change, so the request is sent again;
    its answer (refused) is the result, not the unchanged state."""
    sent = _lose_first(monkeypatch, "answer")
    assert not lifecycle_node.lifecycle(Transition.TRANSITION_DEACTIVATE)
    assert len(sent) >= 2 and set(sent) == {Transition.TRANSITION_DEACTIVATE}
    assert lifecycle_node.state() == "unconfigured"
