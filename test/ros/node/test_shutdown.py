"""A clean stop under load: SIGINT (Ctrl-C, ``ros2 launch``) and SIGTERM (``kill``, systemd,
docker stop) while frames stream in and outputs go out end the node process with code 0 and
not one ERROR line or traceback in its log (the worker is stopped and joined while the ROS
context still works, so no publish or log message races with its shutdown)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from sensor_msgs.msg import Image

from test.ros.harness import NodeProcess, camera_frame, wait_until
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image

PARAMS = {
    "model": "tiny",
    "inference": {"mode": "whole", "whole_size": [64, 128]},
    "qos": {"input": {"reliability": "reliable"}},
    "diagnostics_period": 0.2,
}
RUNS = 3


class Stream:
    """Publishes one frame every ``period`` s in a thread until stopped."""

    def __init__(self, peer, message: Image, period: float = 0.02) -> None:
        self._peer, self._message, self._period = peer, message, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._message.header = self._peer.header("cam")
            self._peer.publish("camera/image_raw", self._message)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_under_load_stops_the_node_cleanly(ros, tmp_path, signum) -> None:
    peer, env = ros
    for kind, msg_type in (("info", SegmentationInfo), ("mask", Image), ("confidence", Image)):
        peer.listen(f"camera/segmentation/{kind}", msg_type)
    frame = array_to_image(camera_frame(512, 1024), "rgb8", peer.header("cam"))
    for run in range(RUNS):
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        node = NodeProcess(folder, PARAMS, env)
        stream = None
        try:
            peer.wait_for_subscriber("camera/image_raw", Image, timeout=120)
            stream = Stream(peer, frame)
            before = len(peer.messages("camera/segmentation/info"))
            wait_until(  # outputs flowing: the worker is busy when the signal comes
                lambda b=before: len(peer.messages("camera/segmentation/info")) >= b + 3,
                60,
                "outputs",
                node.log,
            )
            time.sleep(0.1 * run)  # another moment of the worker's cycle each run
            node.process.send_signal(signum)
            code = node.process.wait(timeout=60)
        finally:
            if stream is not None:
                stream.stop()
            node.stop()
        log = node.log_path.read_text()
        assert code == 0, log
        assert "ERROR" not in log and "Traceback" not in log, log
        assert "Failed to publish log message" not in log, log


def test_sigusr1_prints_every_threads_stack_and_the_node_goes_on(ros, tmp_path) -> None:
    """docs/node.md "A node that stops answering": the stacks of the executor's thread and the
    inference worker, in the node's output; the node keeps segmenting and then stops cleanly."""
    peer, env = ros
    peer.listen("camera/segmentation/info", SegmentationInfo)
    frame = array_to_image(camera_frame(64, 128), "rgb8", peer.header("cam"))
    node = NodeProcess(tmp_path, PARAMS, env)
    try:
        peer.wait_for_subscriber("camera/image_raw", Image, timeout=120)

        def dumped() -> bool:  # the executor's thread starts once autostart has returned
            node.process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            return "in _spin" in node.log()

        wait_until(dumped, 60, "a stack dump with the executor's thread", node.log)
        log = node.log()
        assert "Thread 0x" in log and "in _spin" in log, log  # the executor's thread
        assert "in _work" in log, log  # the inference worker
        before = len(peer.messages("camera/segmentation/info"))
        stream = Stream(peer, frame, period=0.2)
        try:
            wait_until(
                lambda: len(peer.messages("camera/segmentation/info")) > before,
                60,
                "an output after the dump",
                node.log,
            )
        finally:
            stream.stop()
        node.process.send_signal(signal.SIGINT)
        assert node.process.wait(timeout=60) == 0, node.log()
    finally:
        node.stop()
