"""vltseg_node with ``backend: onnxruntime``: an exported .onnx checkpoint segments, the engine
diagnostics name the backend and providers, and bad backend settings fail a transition."""

from __future__ import annotations

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from sensor_msgs.msg import Image

from test.ros.harness import NodeProcess, camera_frame, expect_failed_transition, wait_until
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.image_conversions import array_to_image

OUT = "camera/segmentation/{kind}"
RELIABLE = {"qos": {"input": {"reliability": "reliable"}}, "diagnostics_period": 0.2}


def _engine_status(peer) -> dict[str, str] | None:
    for array in reversed(peer.messages("/diagnostics")):
        for status in array.status:
            if status.name.endswith(": engine"):
                return {kv.key: kv.value for kv in status.values}
    return None


def test_onnx_checkpoint_runs_on_onnxruntime(ros, tmp_path, tiny_onnx) -> None:
    peer, env = ros
    params = {
        **RELIABLE,
        "checkpoint": str(tiny_onnx[1]),  # model empty: the .onnx file carries it
        "backend": "onnxruntime",
        "onnxruntime": {"threads": 1},
        "inference": {"mode": "whole"},  # whole_size: the model's static 64x64
    }
    node = NodeProcess(tmp_path, params, env)
    try:
        peer.listen(OUT.format(kind="mask"), Image)
        peer.listen(OUT.format(kind="info"), SegmentationInfo)
        peer.listen("/diagnostics", DiagnosticArray)
        peer.wait_for_subscriber("camera/image_raw", Image)
        frame = camera_frame(128, 256)
        peer.publish("camera/image_raw", array_to_image(frame, "rgb8", peer.header("x")))
        wait_until(lambda: peer.messages(OUT.format(kind="info")), 60, "info")
        info = peer.messages(OUT.format(kind="info"))[0]
        assert (info.model, info.checkpoint) == ("tiny", str(tiny_onnx[1]))
        mask = peer.messages(OUT.format(kind="mask"))[0]
        assert (mask.height, mask.width, mask.header.frame_id) == (128, 256, "x")
        assert max(mask.data) < 19
        wait_until(lambda: (_engine_status(peer) or {}).get("active") == "True", 10, "engine")
        status = _engine_status(peer)
        assert status["backend"] == "onnxruntime" and "providers cpu" in status["engine"]
        assert "1 threads" in status["engine"]
        log = node.log()
        assert "RANDOM" not in log and "onnxruntime" in log and "Traceback" not in log
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("params", "transition", "expected_state", "log_text"),
    [
        (
            {"backend": "tensorrt"},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "backend: 'tensorrt' is not one of 'pytorch', 'onnxruntime'",
        ),
        (
            {"checkpoint": "{plain}"},  # backend pytorch (the default)
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "is an ONNX model: run it with the onnxruntime backend",
        ),
        (
            {"backend": "onnxruntime", "model": "tiny", "checkpoint": "{plain}"},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "model: must be empty with backend onnxruntime",
        ),
        (
            {"backend": "onnxruntime", "checkpoint": "{plain}", "onnxruntime": {"providers": "x"}},
            Transition.TRANSITION_CONFIGURE,
            "unconfigured",
            "onnxruntime.providers: unknown execution provider 'x'",
        ),
        (
            {"backend": "onnxruntime", "checkpoint": "{plain}"},  # no vltseg metadata
            Transition.TRANSITION_ACTIVATE,
            "inactive",
            "activate failed",
        ),
    ],
)
def test_bad_backend_settings_fail_the_transition_not_the_node(
    ros, tmp_path, no_metadata_onnx, params, transition, expected_state, log_text
) -> None:
    peer, env = ros
    if params.get("checkpoint") == "{plain}":
        params = {**params, "checkpoint": str(no_metadata_onnx)}
    node = NodeProcess(tmp_path, {"autostart": False, **params}, env)
    expect_failed_transition(peer, node, transition, expected_state, log_text)
