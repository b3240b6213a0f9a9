"""Fixtures of the ROS tests: rclpy in a private domain shared with the node process."""

from __future__ import annotations

import pytest
import rclpy

from test.ros.harness import Peer, ros_environment


@pytest.fixture
def ros(tmp_path, monkeypatch):
    """rclpy initialised in a private domain (shared with the node process)."""
    env = ros_environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rclpy.init()
    peer = Peer()
    yield peer, env
    peer.close()
    rclpy.try_shutdown()
