"""The rclpy start-up and shutdown that the player's and the recorder's ``main()`` share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import rclpy
from rclpy.node import Node

from vltseg_ros.errors import VLTSegError

N = TypeVar("N", bound=Node)


@contextmanager
def running(executable: str, make_node: Callable[[], N], args: list[str] | None) -> Iterator[N]:
    """rclpy initialised with ``args`` and the node ``make_node()`` made; on leaving, the node
    destroyed and rclpy shut down.

    A :class:`VLTSegError` while making the node (an invalid parameter, a missing bag) prints
    ``<executable>: error: <why>`` and exits with code 2.
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except VLTSegError as exc:
        print(f"{executable}: error: {exc}")
        rclpy.try_shutdown()
        raise SystemExit(2) from exc
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
