"""The process of ``vltseg_node``: command-line arguments, signals, spinning, a clean stop."""

from __future__ import annotations

import faulthandler
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args

from vltseg_ros.ros.node.logging_bridge import core_logs_to, rclpy_warnings_to
from vltseg_ros.ros.node.settings import usage
from vltseg_ros.ros.node.spinning import Spinner, interrupt_on
from vltseg_ros.ros.node.transitions import autostart


def run_node(make_node: Callable[[], LifecycleNode], args: list[str] | None) -> None:
    """Run the node ``make_node()`` (a :class:`VLTSegNode`: a lifecycle node with
    ``shut_down()``) until SIGINT / SIGTERM: ``vltseg_node``'s process.
    ``--help`` prints the usage and the parameters, any other argument before ``--ros-args`` is
    an error (exit 2).

    SIGUSR1 prints the Python stack of every thread to stderr and the node goes on: what a
    node that stops answering is doing, without stopping it (``kill -USR1 PID``).

    SIGINT and SIGTERM stop the node cleanly (exit 0): the executor's thread ends, the
    lifecycle shutdown stops and joins the inference worker and destroys the entities, and only
    then the ROS context goes, so no publish or log message races with it. (rclpy's own signal
    handlers would shut the context down first, under the worker's feet.) A second signal
    during that stop ends the process at once. When the executor's thread dies, the node stops
    the same way, prints why and exits with code 1.
    """
    own = remove_ros_args(sys.argv if args is None else args)[1:]
    if own[:1] in (["-h"], ["--help"]):
        print(usage())
        return
    if own:
        print(
            f"vltseg_node: error: unrecognized arguments: {' '.join(own)} (parameters go after "
            "--ros-args as -p NAME:=VALUE; see vltseg_node --help)",
            file=sys.stderr,
        )
        sys.exit(2)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    interrupt_on(signal.SIGINT, signal.SIGTERM)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    node = spinner = None
    try:
        node = make_node()
        with core_logs_to(node.get_logger()), rclpy_warnings_to(node.get_logger()):
            if node.get_parameter("autostart").value:
                autostart(node)
            spinner = Spinner([node], SingleThreadedExecutor()).start()
            spinner.wait()  # until a signal; returns if the executor's thread ended
    except KeyboardInterrupt:  # SIGINT or SIGTERM
        pass
    finally:
        if spinner is not None:
            spinner.stop()
        if node is not None:
            node.shut_down()
            node.destroy_node()
        rclpy.try_shutdown()
    if spinner is not None and (reason := spinner.failure()):
        print(f"vltseg_node: error: {reason}", file=sys.stderr)
        sys.exit(1)
