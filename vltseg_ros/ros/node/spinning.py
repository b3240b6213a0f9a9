"""An rclpy executor spinning in a thread of its own, stopped cleanly and watched for death.

rclpy is not safe against destroying an entity (subscription, client, timer) from one thread
while an executor spins the node in another: the executor can touch the entity after its
destruction was requested and raise ``InvalidHandle: cannot use Destroyable because destruction
was requested`` (ros2/rclpy#1284, #1206), which ends ``executor.spin`` and with it every
callback of the process. The rule here: entities are destroyed before the :class:`Spinner`
starts, from its own callbacks, or after :meth:`Spinner.stop` returned. ``executor.shutdown()``
alone does not wait for a spinning thread to leave the executor; :meth:`Spinner.stop` ends the
thread first, then shuts the executor down.

An exception that escapes the executor (a callback's, or rclpy's own) ends the thread: the
spinner keeps it, names it in :meth:`Spinner.failure` and calls ``on_failure``, so that whoever
waits on the spun nodes stops with the reason instead of waiting for callbacks that never come.

:func:`interrupt_on` is the signal handling of a process that stops its nodes itself (rclpy
initialised without its signal handlers, which would shut the ROS context down first).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable

from rclpy.executors import Executor, MultiThreadedExecutor
from rclpy.node import Node

POLL_S = 0.1
"""Seconds the executor waits for work before the thread looks at its stop flag."""


class Spinner:
    """Spins ``nodes`` with ``executor`` (default: a MultiThreadedExecutor) in a daemon thread.

    Args:
        nodes: the nodes to spin.
        executor: the executor; it belongs to the spinner (shut down by :meth:`stop`).
        on_failure: called once, in the spinner's thread, with :meth:`failure`'s text when an
            exception ended the spin (not on a clean stop or a context shutdown).
    """

    def __init__(
        self,
        nodes: Iterable[Node],
        executor: Executor | None = None,
        on_failure: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.executor = executor if executor is not None else MultiThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        self.error: BaseException | None = None
        self._on_failure = on_failure
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="rclpy-spin", daemon=True)

    def start(self) -> Spinner:
        """Start spinning; returns ``self``."""
        self._thread.start()
        return self

    def failure(self) -> str | None:
        """Why the spin thread died (the exception's type and message), or None while it runs
        and after a clean stop."""
        if self.error is None:
            return None
        return f"the rclpy executor thread died: {type(self.error).__name__}: {self.error}"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s (None: for ever) for the thread to end; True once it has.
        A signal's ``KeyboardInterrupt`` interrupts the wait (:func:`join_interruptibly`)."""
        return join_interruptibly(self._thread, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread (after the callback it runs, if any), then shut the executor down
        (waiting up to ``timeout`` s for the callbacks of its worker threads)."""
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.executor.shutdown(timeout_sec=timeout)

    def _spin(self) -> None:
        context = self.executor.context
        try:
            while not self._stopping.is_set() and context.ok():
                self.executor.spin_once(timeout_sec=POLL_S)
        except BaseException as exc:
            if self._stopping.is_set() or not context.ok():
                return  # stopping or shut down: what rclpy raises then is no fault
            self.error = exc
            self._on_failure(self.failure())


def join_interruptibly(thread: threading.Thread, timeout: float | None = None) -> bool:
    """``thread.join(timeout)`` in slices of :data:`POLL_S`, so that a signal handler (the
    ``KeyboardInterrupt`` of :func:`interrupt_on`) runs within one slice; True once the thread
    has ended.

    Why: Python runs signal handlers in the main thread, when it next executes bytecode. A
    process-directed signal (``kill PID``, Ctrl-C) can be taken by any thread of the process (an
    executor, DDS or worker thread that happens to be running); an untimed ``join`` then keeps the
    main thread asleep in the lock wait, and the handler never runs (a full test run under
    load once saw a node log "active" and not react for 10 minutes to the SIGTERM sent then).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        left = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
        if left <= 0:
            break
        thread.join(left)
    return not thread.is_alive()


def interrupt_on(*signals: signal.Signals) -> None:
    """Make each of ``signals`` raise KeyboardInterrupt in the main thread, the first time;
    after that (a second Ctrl-C while stopping) they end the process at once."""

    def interrupt(signum: int, frame: object) -> None:
        for each in signals:
            signal.signal(each, signal.SIG_DFL)
        raise KeyboardInterrupt

    for each in signals:
        signal.signal(each, interrupt)
