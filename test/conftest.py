"""Shared fixtures: real frames from ../shared/data (skipped when absent), tiny models, and
``ros`` for the tests that talk to vltseg_node (rclpy imported only by those)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_FRAMES = (
    Path(
        os.environ.get(
            "VLTSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    / "frames"
)

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # A test run started in the background by a non-interactive shell (`nohup make test &`, a
    # CI step's `cmd &`) has SIGINT ignored, and every process it starts would inherit that:
    # `ros2 launch` would never see the Ctrl-C the launch tests send it (measured: its SigIgn
    # in /proc had SIGINT set, and it ran on). With a handler here, children start with SIGINT
    # at its default, as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_frame(name: str) -> Path:
    """Path of a real frame in ../shared/data/frames; skips the test when it is absent."""
    path = SHARED_FRAMES / name
    if not path.is_file():
        pytest.skip(f"real frame {name} not available (../shared/data is not part of the repo)")
    return path


def private_domain_id(base: int = 100, span: int = 100) -> str:
    """A ROS_DOMAIN_ID in [base, base + span) for this test process alone: the pytest-xdist
    workers of one run get different ones, and separate runs different ones most of the time
    (with the discovery range LOCALHOST, only processes of this machine meet)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or workers > span:
        return str(base + os.getpid() % span)
    runs = span // workers
    return str(base + (os.getppid() % runs) * workers + int(worker[2:]))


if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Workers share the cores: one torch thread each (also in the node processes they start),
    # instead of every worker's intra-op threads fighting over every core.
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))
    torch.set_num_threads(_threads)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def ros(tmp_path, monkeypatch):
    """rclpy initialised in a private domain shared with the node process: yields the test's
    ``Peer`` and the node process's environment (test/ros/harness.py)."""
    import rclpy

    from test.ros.harness import Peer, ros_environment

    env = ros_environment(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rclpy.init()
    peer = Peer()
    yield peer, env
    peer.close()
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def real_vision_msgs(tmp_path_factory) -> Path:
    """Install prefix of the real vision_msgs 4.1.1 from ../shared/ros2_vision_msgs, built once
    per test session and xdist worker (about a minute); skips when the sources are absent. Use
    it with ``test.real_vision_msgs.receive_label_info(prefix, topic, env)``."""
    from test.real_vision_msgs import real_vision_msgs_prefix

    return real_vision_msgs_prefix(tmp_path_factory)


@pytest.fixture(scope="session")
def no_metadata_onnx(tmp_path_factory) -> Path:
    """A valid ONNX graph with the right input / output names but no vltseg metadata."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["scores"])],
        "plain",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, 64, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 3, 64, 64])],
    )
    path = tmp_path_factory.mktemp("plain") / "plain.onnx"
    onnx.save(helper.make_model(graph), path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """The tiny model (seed 0, random weights) and its ONNX export (dynamic batch, 64x64
    input), exported once per test session (about 15 s on 2 cores)."""
    from vltseg_ros.export.onnx_export import export_onnx
    from vltseg_ros.model.segmentor import build_model

    torch.manual_seed(0)
    model = build_model("tiny").eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path)
    return model, path


@pytest.fixture(scope="session")
def traversability():
    """config/class_maps/traversability.yaml bound to the Cityscapes classes."""
    from vltseg_ros.config.class_map import load_class_map
    from vltseg_ros.config.model_config import load_class_set

    path = Path(__file__).resolve().parents[1] / "config" / "class_maps" / "traversability.yaml"
    return load_class_map(path, load_class_set("cityscapes"))
