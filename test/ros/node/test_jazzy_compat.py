"""vltseg_ros/ros/node/compat.py on the distribution of this venv (Kilted in .venv, Jazzy in
.venv-jazzy): a lifecycle transition the current state does not allow fails, as a service call
and as a direct trigger, and the node keeps its state and keeps answering.

Without the guard, Jazzy's rclpy raises RCLError out of the change_state callback (the
executor's spin ends, the node process with it) and out of ``trigger_*``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="no rclpy (run `make setup`)")

from lifecycle_msgs.msg import Transition
from rclpy.lifecycle import TransitionCallbackReturn

from test.ros.harness import NODE
from vltseg_ros.ros.node.compat import LifecycleNode


def test_an_impossible_transition_fails_and_the_node_answers_on(ros) -> None:
    peer, _ = ros
    node = LifecycleNode(NODE)
    peer.add(node)
    try:
        assert peer.state() == "unconfigured"
        assert not peer.lifecycle(Transition.TRANSITION_DEACTIVATE)  # not from unconfigured
        assert peer.state() == "unconfigured"
        assert peer.lifecycle(Transition.TRANSITION_CONFIGURE)
        assert not peer.lifecycle(Transition.TRANSITION_CONFIGURE)  # not from inactive
        assert peer.state() == "inactive"
        assert peer.lifecycle(Transition.TRANSITION_ACTIVATE)
        assert peer.state() == "active"
    finally:
        peer.remove(node)
        node.destroy_node()


def test_an_impossible_trigger_returns_error(ros) -> None:
    node = LifecycleNode("vltseg_compat_trigger")
    try:
        assert node.trigger_activate() == TransitionCallbackReturn.ERROR  # not from unconfigured
        assert node._state_machine.current_state[1] == "unconfigured"
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_configure() == TransitionCallbackReturn.ERROR  # not from inactive
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node._state_machine.current_state[1] == "unconfigured"
    finally:
        node.destroy_node()
