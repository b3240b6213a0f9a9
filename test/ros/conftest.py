"""Fixtures of the ROS-facing tests."""

from __future__ import annotations

import pytest
import rclpy


@pytest.fixture
def context():
    """An rclpy context of the test's own (initialised, shut down afterwards)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)
