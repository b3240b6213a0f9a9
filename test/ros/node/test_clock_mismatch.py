"""A camera whose clock is ahead of the node's: frames stamped in the future are segmented, their
latency is reported as unknown (-1, never negative), counted as a clock mismatch with a WARN in
the camera's diagnostics, and not taken for stale; a stamp ahead by less than the tolerance
(clock jitter) counts as now."""

from __future__ import annotations

import re

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image

from test.ros.harness import wait_until
from test.ros.node.in_process import node_in_process, use_fake_engine
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image
from vltseg_ros.ros.node.scheduling import CLOCK_TOLERANCE, FrameScheduler, PendingFrame
from vltseg_ros.ros.node.transitions import autostart

PARAMS = {
    "model": "tiny",
    "qos": {"input": {"reliability": "reliable"}},
    "diagnostics_period": 0.1,
    "max_age": 0.5,
}
INFO = "camera/segmentation/info"
AHEAD = 100_000_000.0  # about 3 years (the field saw 11; a header's int32 sec would overflow)


def test_a_pending_frame_stamped_in_the_future_has_an_unknown_latency_and_is_not_stale() -> None:
    now = 1000.0
    future = PendingFrame("cam", None, stamp=now + AHEAD, received=now - 0.2)
    assert future.clock_mismatch(now) and future.ahead(now) == pytest.approx(AHEAD)
    assert future.latency(now) is None
    assert future.age(now) == pytest.approx(0.2)  # since its arrival
    jitter = PendingFrame("cam", None, stamp=now + 0.9 * CLOCK_TOLERANCE, received=now)
    assert not jitter.clock_mismatch(now) and jitter.latency(now) == 0.0
    past = PendingFrame("cam", None, stamp=now - 0.3, received=now - 0.1)
    assert not past.clock_mismatch(now) and past.latency(now) == pytest.approx(0.3)
    unset = PendingFrame("cam", None, stamp=0.0, received=now - 0.1)
    assert not unset.clock_mismatch(now) and unset.latency(now) == pytest.approx(0.1)
    # use_sim_time before the first /clock: the node's clock reads 0; unknown, no mismatch
    early = PendingFrame("cam", None, stamp=now, received=0.0)
    assert not early.clock_mismatch(0.0) and early.latency(0.0) is None


class _Counter:
    def __init__(self) -> None:
        self.drops: list[str] = []

    def received(self) -> None:
        pass

    def dropped(self, reason: str) -> None:
        self.drops.append(reason)


def test_max_age_measures_a_future_frame_from_its_arrival() -> None:
    clock = [1000.0]
    counter = _Counter()
    scheduler = FrameScheduler({"cam": counter}, max_age=0.5, clock=lambda: clock[0])
    scheduler.submit("cam", "fresh", clock[0] + AHEAD)
    assert [f.message for f in scheduler.next_batch(timeout=0)] == ["fresh"]
    scheduler.submit("cam", "waited", clock[0] + AHEAD)
    clock[0] += 2.0  # it waited 2 s in its slot: stale, however far ahead its stamp is
    assert scheduler.next_batch(timeout=0) == [] and counter.drops == ["stale"]


def _camera_status(peer) -> DiagnosticStatus | None:
    for array in reversed(peer.messages("/diagnostics")):
        for status in array.status:
            if status.name.endswith("camera camera"):
                return status
    return None


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_a_frame_stamped_in_the_future_is_a_clock_mismatch_with_unknown_latency(
    ros, monkeypatch
) -> None:
    peer, _ = ros
    use_fake_engine(monkeypatch)
    frame = np.full((64, 128, 3), 100, np.uint8)
    with node_in_process(peer, PARAMS) as node:
        assert autostart(node)
        peer.listen(INFO, SegmentationInfo)
        peer.listen("/diagnostics", DiagnosticArray)
        peer.wait_for_subscriber("camera/image_raw", Image)

        def segment(age: float) -> SegmentationInfo:
            count = len(peer.messages(INFO))
            peer.publish("camera/image_raw", array_to_image(frame, "rgb8", peer.header("c", age)))
            wait_until(lambda: len(peer.messages(INFO)) > count, 30, "info")
            return peer.messages(INFO)[-1]

        info = segment(-AHEAD)  # stamped years ahead: processed, not stale
        assert info.end_to_end_latency == -1.0
        status = None

        def warned() -> bool:
            nonlocal status
            status = _camera_status(peer)
            return status is not None and _values(status).get("clock_mismatch") == "1"

        wait_until(warned, 30, "clock_mismatch in the diagnostics", lambda: status)
        assert status.level == DiagnosticStatus.WARN
        warning = re.fullmatch(
            r"header stamps are ([\d.]+) s ahead of the node's clock: clock mismatch "
            r"\(use_sim_time\?\)",
            status.message,
        )
        assert warning and float(warning[1]) == pytest.approx(AHEAD, abs=10), status.message
        values = _values(status)
        assert (values["published"], values["dropped_stale"]) == ("1", "0")
        assert values["latency_p50_ms"] == "nan"  # the unknown latency is no sample
        jitter = segment(-0.5 * CLOCK_TOLERANCE)  # within the tolerance: counts as now
        assert jitter.end_to_end_latency == 0.0
        normal = segment(0.0)
        assert 0.0 < normal.end_to_end_latency < 10.0
        health = node._cameras["camera"].health
        assert health.counts()["clock_mismatch"] == 1 and health.counts()["published"] == 3
