"""Newest-frame-wins scheduling between subscription callbacks and one inference worker.

Callbacks only :meth:`FrameScheduler.submit` (O(1), never waits on inference). Each camera has
one slot holding its newest unprocessed frame; a frame replaced before the worker took it is
dropped and counted as *busy* (on the camera's :class:`FrameCounter`, the node's
``CameraHealth``). The worker's :meth:`FrameScheduler.next_batch` takes the newest
frame of every camera at once (so several cameras run as one batch) and drops, counting as
*stale*, frames older than ``max_age`` (by their header stamp; by their arrival when the stamp
is unset or in the future, see :data:`CLOCK_TOLERANCE`). When some cameras have a frame and
others not yet, it waits up to ``batch_window`` (from the arrival of the oldest waiting frame)
for the rest, so the frames of a synchronized camera rig that arrive a few milliseconds apart
share one batch instead of the later ones waiting a whole inference. Nothing here imports ROS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

CLOCK_TOLERANCE = 1.0
"""Seconds a header stamp may be ahead of the node's clock and still count as "now": jitter
between the camera's clock and the node's (a replay's ``/clock`` arriving just after the frame).
A stamp further ahead is a clock mismatch: it says nothing about the frame's age."""


@dataclass(frozen=True)
class PendingFrame:
    """A received frame waiting for inference.

    Attributes:
        camera: camera name.
        message: the message as received (decoded later, by the worker).
        stamp: capture time from the message header [s, node clock]; 0 when unset.
        received: node clock when the callback ran [s].
    """

    camera: str
    message: Any
    stamp: float
    received: float

    def ahead(self, now: float) -> float:
        """Seconds the header stamp is ahead of ``now`` (> 0: stamped in the future); 0 when
        it is unset."""
        return self.stamp - now if self.stamp > 0 else 0.0

    def clock_mismatch(self, now: float) -> bool:
        """The header stamp is more than :data:`CLOCK_TOLERANCE` ahead of ``now``, and the
        node's clock runs (``now`` > 0; with ``use_sim_time`` it is 0 before the first
        ``/clock``)."""
        return now > 0 and self.ahead(now) > CLOCK_TOLERANCE

    def age(self, now: float) -> float:
        """Seconds since capture, never negative: since receipt when the header stamp is unset
        or more than :data:`CLOCK_TOLERANCE` ahead of ``now``; a stamp ahead by less counts as
        ``now``."""
        if self.stamp <= 0 or self.ahead(now) > CLOCK_TOLERANCE:
            return max(now - self.received, 0.0)
        return max(now - self.stamp, 0.0)

    def latency(self, now: float) -> float | None:
        """Seconds from capture to ``now`` (:meth:`age`), or None (unknown) when the header
        stamp is more than :data:`CLOCK_TOLERANCE` ahead of ``now`` (a clock mismatch, or a
        node clock that has not started)."""
        return None if self.ahead(now) > CLOCK_TOLERANCE else self.age(now)


class FrameCounter(Protocol):
    """Where a camera's received and dropped frames are counted."""

    def received(self) -> None: ...

    def dropped(self, reason: Literal["busy", "stale"]) -> None: ...


@dataclass
class _Slot:
    counter: FrameCounter
    frame: PendingFrame | None = None
    arrived: float = 0.0  # time.monotonic() of the frame's arrival, for the batch window


class FrameScheduler:
    """Per-camera newest-frame slots shared by callbacks (producers) and one worker.

    Args:
        cameras: camera name -> where its frames are counted.
        max_age: frames older than this many seconds when the worker takes them are dropped;
            0 or less disables the check.
        clock: returns the current time in seconds, on the same clock as the frame stamps.
        batch_window: seconds to wait for the other cameras' frames once one has arrived
            (measured on the monotonic clock); 0 takes whatever is there.
    """

    def __init__(
        self,
        cameras: Mapping[str, FrameCounter],
        max_age: float,
        clock: Callable[[], float],
        batch_window: float = 0.0,
    ) -> None:
        self._slots = {name: _Slot(counter) for name, counter in cameras.items()}
        self._max_age = max_age
        self._batch_window = batch_window
        self._clock = clock
        self._ready = threading.Condition()
        self._closed = False

    def submit(self, camera: str, message: Any, stamp: float) -> None:
        """Store the newest frame of ``camera``, replacing (and counting) an untaken one."""
        frame = PendingFrame(camera, message, stamp, self._clock())
        with self._ready:
            slot = self._slots[camera]
            slot.counter.received()
            if slot.frame is not None:
                slot.counter.dropped("busy")
            else:
                slot.arrived = time.monotonic()
            slot.frame = frame
            self._ready.notify()

    def next_batch(self, timeout: float) -> list[PendingFrame]:
        """Wait up to ``timeout`` s for frames; take the newest of every camera, minus stale ones.

        Returns an empty list on timeout, when every waiting frame was stale, or once closed.
        """
        with self._ready:
            if not self._closed and not self._has_frames():
                self._ready.wait(timeout)
            self._wait_for_other_cameras()
            if self._closed:
                return []
            now = self._clock()
            batch = []
            for slot in self._slots.values():
                frame, slot.frame = slot.frame, None
                if frame is None:
                    continue
                if self._max_age > 0 and frame.age(now) > self._max_age:
                    slot.counter.dropped("stale")
                else:
                    batch.append(frame)
            return batch

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Wake the worker and make every later :meth:`next_batch` return at once."""
        with self._ready:
            self._closed = True
            for slot in self._slots.values():
                slot.frame = None
            self._ready.notify_all()

    def _has_frames(self) -> bool:
        return any(slot.frame is not None for slot in self._slots.values())

    def _wait_for_other_cameras(self) -> None:
        """With the lock held and some frames waiting: wait (up to the batch window after the
        oldest arrival) until every camera has a frame."""
        while not self._closed and self._batch_window > 0:
            waiting = [s for s in self._slots.values() if s.frame is not None]
            if not waiting or len(waiting) == len(self._slots):
                return
            remaining = min(s.arrived for s in waiting) + self._batch_window - time.monotonic()
            if remaining <= 0:
                return
            self._ready.wait(remaining)
