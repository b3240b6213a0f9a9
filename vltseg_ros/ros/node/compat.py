"""What differs between the ROS 2 distributions the node runs on (Kilted, Jazzy), in one place.

:class:`LifecycleNode`: a transition that the current state does not allow (e.g. ``deactivate``
of an inactive node, requested through the ``change_state`` service or ``ros2 lifecycle set``)
answers "failed" and leaves the state as it was. That is what Kilted's rclpy (9.x) does; Jazzy's
(7.x) raises ``RCLError`` from the service callback instead, which ends the executor's spin and
so the node process. The guard below gives Jazzy Kilted's behaviour and changes nothing on
Kilted, so no code elsewhere asks which distribution it runs on.
"""

from __future__ import annotations

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode as _RclpyLifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn

__all__ = ["LifecycleNode"]


class LifecycleNode(_RclpyLifecycleNode):
    """rclpy's LifecycleNode whose invalid transitions fail instead of raising (see module)."""

    # rclpy's LifecycleNodeMixin runs every transition (change_state service, trigger_*) through
    # its private __change_state; this wraps that one method under its mangled name.
    def _LifecycleNodeMixin__change_state(self, transition_id: int) -> TransitionCallbackReturn:
        try:
            return super()._LifecycleNodeMixin__change_state(transition_id)
        except _rclpy.RCLError as exc:
            state = self._state_machine.current_state[1]
            self.get_logger().error(f"Transition {transition_id} not possible from {state}: {exc}")
            return TransitionCallbackReturn.ERROR
