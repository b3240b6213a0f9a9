"""The node process's wait for its executor thread reacts to a signal that another thread of the
process took (vltseg_ros.ros.node.spinning.join_interruptibly)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from vltseg_ros.ros.node.spinning import join_interruptibly


class Interrupted(Exception):
    pass


def _raise(signum, frame) -> None:
    raise Interrupted


def _signal_taken_by_another_thread(after: float) -> None:
    """SIGUSR2 to a helper thread (not the main thread) after ``after`` s: its C handler runs
    there, the Python handler waits for the main thread to run bytecode."""

    def deliver() -> None:
        time.sleep(after)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)

    threading.Thread(target=deliver, daemon=True).start()


@pytest.fixture
def handler():
    previous = signal.signal(signal.SIGUSR2, _raise)
    yield
    signal.signal(signal.SIGUSR2, previous)


def test_an_untimed_join_sleeps_through_it_the_sliced_one_does_not(handler) -> None:
    sleeper = threading.Thread(target=time.sleep, args=(2.0,), daemon=True)
    sleeper.start()
    _signal_taken_by_another_thread(0.2)
    started = time.monotonic()
    with pytest.raises(Interrupted):
        sleeper.join()  # the cause: the handler runs only once the join has returned
    assert time.monotonic() - started > 1.5

    sleeper = threading.Thread(target=time.sleep, args=(5.0,), daemon=True)
    sleeper.start()
    _signal_taken_by_another_thread(0.2)
    started = time.monotonic()
    with pytest.raises(Interrupted):
        join_interruptibly(sleeper)
    assert time.monotonic() - started < 1.5


def test_it_returns_when_the_thread_ends_or_the_timeout_passes() -> None:
    short = threading.Thread(target=time.sleep, args=(0.3,))
    short.start()
    assert join_interruptibly(short) is True and not short.is_alive()
    long = threading.Thread(target=time.sleep, args=(2.0,), daemon=True)
    long.start()
    started = time.monotonic()
    assert join_interruptibly(long, timeout=0.35) is False
    assert 0.3 < time.monotonic() - started < 1.0
