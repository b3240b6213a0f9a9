"""Newest-frame-wins scheduling: callbacks never wait, busy and stale frames are counted."""

from __future__ import annotations

import threading
import time

from vltseg_ros.ros.node.health import CameraHealth
from vltseg_ros.ros.node.scheduling import FrameScheduler


def cameras(*names: str) -> dict[str, CameraHealth]:
    return {name: CameraHealth(f"camera {name}") for name in names}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_newest_frame_wins_and_replaced_frames_count_as_busy() -> None:
    clock = FakeClock()
    health = cameras("front", "rear")
    scheduler = FrameScheduler(health, max_age=1.0, clock=clock)
    for i in range(5):
        scheduler.submit("front", f"f{i}", stamp=clock.now)
    scheduler.submit("rear", "r0", stamp=clock.now)
    batch = scheduler.next_batch(timeout=0.1)
    assert [(f.camera, f.message) for f in batch] == [("front", "f4"), ("rear", "r0")]
    front = health["front"].counts()
    assert (front["received"], front["dropped_busy"]) == (5, 4)
    assert health["rear"].counts() == {**front, "received": 1, "dropped_busy": 0}
    assert scheduler.next_batch(timeout=0.01) == []  # slots were emptied


def test_stale_frames_are_dropped_and_counted() -> None:
    clock = FakeClock()
    health = cameras("cam")
    scheduler = FrameScheduler(health, max_age=0.5, clock=clock)
    scheduler.submit("cam", "old", stamp=clock.now - 2.0)
    assert scheduler.next_batch(timeout=0.01) == []
    assert health["cam"].counts()["dropped_stale"] == 1
    scheduler.submit("cam", "fresh", stamp=clock.now - 0.1)
    assert [f.message for f in scheduler.next_batch(timeout=0.01)] == ["fresh"]
    # an unset stamp (0) falls back to the receipt time
    scheduler.submit("cam", "unstamped", stamp=0.0)
    clock.now += 0.4
    assert [f.message for f in scheduler.next_batch(timeout=0.01)] == ["unstamped"]
    scheduler.submit("cam", "waited", stamp=0.0)
    clock.now += 0.6
    assert scheduler.next_batch(timeout=0.01) == []


def test_max_age_zero_disables_the_check() -> None:
    clock = FakeClock()
    health = cameras("cam")
    scheduler = FrameScheduler(health, max_age=0.0, clock=clock)
    scheduler.submit("cam", "ancient", stamp=1.0)
    assert len(scheduler.next_batch(timeout=0.01)) == 1


def test_submit_never_waits_on_a_busy_worker_and_close_wakes_it() -> None:
    health = cameras("cam")
    scheduler = FrameScheduler(health, max_age=0.0, clock=time.monotonic)
    taken: list[str] = []
    slow = threading.Event()

    def worker() -> None:
        while True:
            batch = scheduler.next_batch(timeout=1.0)
            if not batch and scheduler_closed.is_set():
                return
            taken.extend(f.message for f in batch)
            slow.wait(0.2)  # "inference"

    scheduler_closed = threading.Event()
    thread = threading.Thread(target=worker)
    thread.start()
    start = time.perf_counter()
    for i in range(200):
        scheduler.submit("cam", str(i), stamp=0.0)
    assert time.perf_counter() - start < 0.5  # 200 submits while the worker is busy
    time.sleep(0.5)
    scheduler_closed.set()
    scheduler.close()
    thread.join(timeout=2.0)
    assert not thread.is_alive()
    counts = health["cam"].counts()
    assert counts["received"] == 200 and len(taken) < 10
    assert len(taken) + counts["dropped_busy"] == 200
    assert taken[-1] == "199"  # the newest frame was the one processed last


def test_batch_window_waits_for_the_other_cameras() -> None:
    scheduler = FrameScheduler(
        cameras("front", "rear"), max_age=0.0, clock=time.monotonic, batch_window=0.5
    )

    def late_rear() -> None:
        time.sleep(0.1)
        scheduler.submit("rear", "r", stamp=0.0)

    scheduler.submit("front", "f", stamp=0.0)
    threading.Thread(target=late_rear).start()
    start = time.monotonic()
    batch = scheduler.next_batch(timeout=1.0)
    assert sorted(f.camera for f in batch) == ["front", "rear"]  # one batch, not two
    assert time.monotonic() - start < 0.45  # returned when rear arrived, not at the window end

    scheduler.submit("front", "f2", stamp=0.0)  # rear never comes: the window bounds the wait
    start = time.monotonic()
    assert [f.camera for f in scheduler.next_batch(timeout=1.0)] == ["front"]
    assert 0.4 <= time.monotonic() - start < 0.9


def test_single_camera_never_waits_for_the_window() -> None:
    health = cameras("cam")
    scheduler = FrameScheduler(health, max_age=0.0, clock=time.monotonic, batch_window=5.0)
    scheduler.submit("cam", "x", stamp=0.0)
    start = time.monotonic()
    assert len(scheduler.next_batch(timeout=1.0)) == 1
    assert time.monotonic() - start < 0.1
