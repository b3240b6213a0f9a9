"""vltseg_node against what a faulty camera, a bad configuration or a failing GPU sends it.

The node runs in this process (real rclpy and Fast DDS, the tiny random-weight model), with
a fault-injecting engine where a test needs one. Every case checks that the node survives,
that the counters say what happened, and that a good frame comes back afterwards.
"""

from __future__ import annotations

import re
import resource
import time

import cv2
import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import CompressedImage, Image

from test.io.test_image_files import jpeg_bomb, png_bomb
from test.ros.harness import wait_until
from test.ros.node.in_process import inject_faults, node_in_process
from test.ros.node.in_process import state as lifecycle_state
from vltseg_ros.errors import EngineError
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image
from vltseg_ros.ros.node.transitions import autostart

WHOLE = {
    "model": "tiny",
    "inference": {"mode": "whole", "whole_size": [64, 128]},
    "diagnostics_period": 0.1,
    "qos": {"input": {"reliability": "reliable"}},
    "max_age": 0.0,
}
MASK = "{camera}/segmentation/mask"


def _frame(value: int = 100, height: int = 64, width: int = 128) -> np.ndarray:
    """A uint8 RGB frame; ``value`` marks it (see the content-triggered faults below)."""
    frame = np.full((height, width, 3), value, np.uint8)
    frame[: height // 2] //= 2
    return frame


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1])
    assert ok
    return data.tobytes()


def _start(peer, node, cameras: dict[str, type]) -> None:
    """Activate the node and wait until ``peer`` can reach every camera's input topic."""
    assert autostart(node)
    peer.listen("/diagnostics", DiagnosticArray)
    for camera, msg_type in cameras.items():
        peer.listen(MASK.format(camera=camera), Image)
        suffix = "/compressed" if msg_type is CompressedImage else ""
        peer.wait_for_subscriber(f"{camera}/image_raw{suffix}", msg_type)


def _send(peer, camera: str, msg) -> None:
    suffix = "/compressed" if isinstance(msg, CompressedImage) else ""
    msg.header = peer.header(camera)
    peer.publish(f"{camera}/image_raw{suffix}", msg)


def _masks(peer, camera: str) -> list:
    return peer.messages(MASK.format(camera=camera))


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[ERROR]")]


def test_decompression_bombs_are_refused_before_decoding_and_stall_no_camera(ros) -> None:
    """JPEG / PNG headers declaring 20000 x 20000 pixels on one camera, good frames on the
    other: the bombs are refused from the header (no gigabytes allocated), the other camera
    is served throughout, and the hostile camera's next good frame is segmented."""
    peer, _ = ros
    params = {**WHOLE, "cameras": ["front", "hostile"], "hostile": {"transport": "compressed"}}
    bombs = [jpeg_bomb(), png_bomb()]
    with node_in_process(peer, params) as node:
        _start(peer, node, {"front": Image, "hostile": CompressedImage})
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
        good = array_to_image(_frame(), "rgb8", peer.header("front"))
        for round_ in range(6):
            bomb = bombs[round_ % 2]
            _send(
                peer, "hostile", CompressedImage(format="png" if round_ % 2 else "jpeg", data=bomb)
            )
            _send(peer, "front", good)
            wait_until(lambda n=round_: len(_masks(peer, "front")) > n, 30, f"front mask {round_}")
        diag = peer.wait_for_diagnostics("hostile", dropped_bad_input=6)
        refused = "PNG image of 20000x20000 = 400000000 pixels, over the limit of 33554432"
        assert refused in diag["last_error"] and "refused before decoding" in diag["last_error"]
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
        assert grown < 300_000, f"peak memory grew {grown} KiB: a bomb was decoded"
        assert peer.wait_for_diagnostics("front", published=6, errors=0)
        _send(peer, "hostile", CompressedImage(format="jpeg", data=_jpeg(_frame())))
        wait_until(lambda: _masks(peer, "hostile"), 30, "the hostile camera's good frame")
        assert _masks(peer, "hostile")[-1].height == 64


@pytest.mark.parametrize(
    ("params", "cli_args", "state", "expected"),
    [
        (
            {"checkpoint": "{text_pth}"},
            None,
            "inactive",
            r"activate failed: '.*text\.pth' is not a PyTorch checkpoint: it starts with b'hell'",
        ),
        (
            {"checkpoint": "{tmp}"},
            None,
            "unconfigured",
            r"configure failed: invalid parameters: checkpoint: file '.*' is a folder",
        ),
        (
            {"camera": {"image_topic": "bad topic!"}},
            None,
            "unconfigured",
            r"configure failed: .*camera\.image_topic: 'bad topic!' is not a valid topic name",
        ),
        (
            {},
            ["--ros-args", "-p", "cameras:=[]"],
            "unconfigured",
            r"configure failed: invalid parameters: cameras: has no value \(an empty list",
        ),
        (
            {"precision": "fp16"},
            None,
            "unconfigured",
            r"configure failed: .*device / precision: fp16 on 'cpu': fp16 runs only on CUDA",
        ),
        (
            {"inference": {"crop_size": [64, 64], "stride": [128, 128]}},
            None,
            "inactive",
            r"activate failed: inference\.stride \(128, 128\) must not exceed crop_size",
        ),
    ],
    ids=["text-pth", "folder-checkpoint", "bad-topic", "no-cameras", "fp16-cpu", "stride"],
)
def test_a_failed_transition_logs_one_error_line_and_autostart_stops(
    ros, tmp_path, capfd, params, cli_args, state, expected
) -> None:
    peer, _ = ros
    (tmp_path / "text.pth").write_text("hello world\n")
    fields = {"text_pth": tmp_path / "text.pth", "tmp": tmp_path}
    for key, value in list(params.items()):
        if isinstance(value, str):
            params[key] = value.format(**fields)
    capfd.readouterr()
    with node_in_process(peer, {"model": "tiny", **params}, cli_args) as node:
        assert not autostart(node)
        assert lifecycle_state(node) == state
        time.sleep(0.2)  # let the log lines reach stderr
        log = capfd.readouterr().err
        errors = _error_lines(log)
        assert len(errors) == 1, log
        assert re.search(expected, errors[0]), errors[0]
        assert f"(the node stays {state})" in errors[0]
        assert "No transition matching" not in log and "Unable to start transition" not in log
        assert "Traceback" not in log


def test_an_engine_error_mid_stream_skips_that_frame_only(ros, monkeypatch) -> None:
    peer, _ = ros
    engines = inject_faults(
        monkeypatch, lambda inputs, call: EngineError("injected fault") if call == 3 else None
    )  # call 1 is the warm-up
    with node_in_process(peer, WHOLE) as node:
        _start(peer, node, {"camera": Image})
        for i in range(4):
            _send(peer, "camera", array_to_image(_frame(), "rgb8", peer.header("")))
            wait_until(lambda n=i: len(engines[0].calls) >= n + 2, 30, f"inference of frame {i}")
        diag = peer.wait_for_diagnostics("camera", published=3, errors=1)
        assert diag["last_error"] == "inference failed: EngineError: injected fault"
        wait_until(lambda: len(_masks(peer, "camera")) == 3, 10, "three masks")


def test_cuda_out_of_memory_retries_at_a_smaller_batch(ros, monkeypatch, caplog) -> None:
    """An engine that runs out of memory above 2 crops per pass: the first frame is retried
    at batch 2 after the cache is emptied and published; later frames run at batch 2."""
    peer, _ = ros

    def memory_limit(inputs, call):
        return (
            torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
            if len(inputs) > 2
            else None
        )

    engines = inject_faults(monkeypatch, memory_limit)
    slide = {"mode": "slide", "crop_size": [64, 64], "stride": [64, 64]}
    params = {**WHOLE, "inference": slide, "batch_size": 4, "warmup": False}
    with node_in_process(peer, params) as node:
        _start(peer, node, {"camera": Image})
        for i in range(2):  # 128 x 256: 2 x 4 = 8 crops of 64
            _send(peer, "camera", array_to_image(_frame(100, 128, 256), "rgb8", peer.header("")))
            wait_until(lambda n=i: len(_masks(peer, "camera")) > n, 30, f"mask {i}")
        engine = engines[0]
        # frame 1: 4 crops run out of memory, run again as 2 + 2, its other 4 crops at 2;
        # frame 2: all 8 crops at 2
        assert engine.calls == [4, 2, 2, 2, 2, 2, 2, 2, 2]
        assert engine.released == 1
        assert peer.wait_for_diagnostics("camera", published=2, errors=0)
        # the node process forwards the core's log to its ROS log (test_logging_bridge.py)
        assert "lowered batch_size from 4 to 2 (kept for later frames)" in caplog.text


def test_out_of_memory_even_for_one_crop_skips_the_frame(ros, monkeypatch) -> None:
    peer, _ = ros
    failing = {"on": True}

    def fault(inputs, call):
        return torch.cuda.OutOfMemoryError("CUDA out of memory") if failing["on"] else None

    inject_faults(monkeypatch, fault)
    params = {**WHOLE, "batch_size": 1, "warmup": False}
    with node_in_process(peer, params) as node:
        _start(peer, node, {"camera": Image})
        _send(peer, "camera", array_to_image(_frame(), "rgb8", peer.header("")))
        diag = peer.wait_for_diagnostics("camera", errors=1, published=0)
        assert "EngineOutOfMemoryError" in diag["last_error"]
        assert "ran out of memory on a single network input" in diag["last_error"]
        failing["on"] = False
        _send(peer, "camera", array_to_image(_frame(), "rgb8", peer.header("")))
        peer.wait_for_diagnostics("camera", errors=1, published=1)


def test_a_camera_whose_frames_keep_failing_does_not_stop_the_others(ros, monkeypatch) -> None:
    """The engine fails on any batch holding a white frame (the "broken" camera's): both
    cameras' frames share batches, yet every good frame is published."""
    peer, _ = ros
    white = (255 - 123.675) / 58.395  # the normalized red value of a white pixel
    inject_faults(
        monkeypatch,
        lambda inputs, call: EngineError("poisoned input") if inputs.amax() >= white else None,
    )
    params = {**WHOLE, "cameras": ["good", "broken"], "batch_window": 0.2}
    with node_in_process(peer, params) as node:
        _start(peer, node, {"good": Image, "broken": Image})
        peer.listen("good/segmentation/info", SegmentationInfo)
        for i in range(4):
            _send(peer, "broken", array_to_image(_frame(255), "rgb8", peer.header("")))
            _send(peer, "good", array_to_image(_frame(100), "rgb8", peer.header("")))
            wait_until(lambda n=i: len(_masks(peer, "good")) > n, 30, f"good mask {i}")
        peer.wait_for_diagnostics("broken", errors=4, published=0)
        good = peer.wait_for_diagnostics("good", errors=0, published=4)
        assert good["last_error"] == ""
        infos = peer.messages("good/segmentation/info")
        assert max(info.batch_frames for info in infos) == 2  # they did share batches
