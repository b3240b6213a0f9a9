"""Lifecycle transitions that say why they fail, and the autostart sequence.

rclpy swallows an exception raised in a transition callback without a word; :func:`transition`
turns it into one ERROR line, undoes what the callback did, and reports FAILURE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from vltseg_ros.errors import VLTSegError

N = TypeVar("N", bound=LifecycleNode)
Callback = Callable[[N, LifecycleState], TransitionCallbackReturn]


def transition(
    name: str, stays: str, undo: Callable[[N], None] | None = None
) -> Callable[[Callback], Callback]:
    """Make a lifecycle callback log one ERROR line, ``undo`` what it did and fail on any
    exception (rclpy would swallow the exception without a word)."""

    def decorate(callback: Callback) -> Callback:
        @functools.wraps(callback)
        def run(node: N, state: LifecycleState) -> TransitionCallbackReturn:
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


def autostart(node: LifecycleNode) -> bool:
    """Configure, then activate; stop at the first failure (which has logged why). True when
    the node is active."""
    for trigger in (node.trigger_configure, node.trigger_activate):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            return False
    return True
