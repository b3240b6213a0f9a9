"""Live replay: a bag played into a real ``vltseg_node`` process, its outputs recorded and scored.

What ``bag_replay.launch.py`` does with three processes, in one call for the command line
(``vltseg bag-eval BAG --live``) and the main demo: the node runs in its own process with
``use_sim_time`` and the Fast DDS large-data profile; the player and the recorder run here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from vltseg_ros.evaluation.report import EvaluationReport
from vltseg_ros.ros.launch.setups import CAMERA, MASK, bag_camera
from vltseg_ros.ros.node.spinning import Spinner
from vltseg_ros.ros.node.transport import large_data_environment
from vltseg_ros.ros.replay.player import BagPlayer
from vltseg_ros.ros.replay.readiness import ReplayError, wait_for_ready, wait_until_active
from vltseg_ros.ros.replay.recorder import ReplayRecorder


def write_params_file(folder: Path, params: dict[str, Any]) -> Path:
    """``folder/vltseg_node.yaml`` holding ``params`` (nested, or with dotted names) for the
    node in any namespace."""
    nested: dict[str, Any] = {}
    for name, value in params.items():
        *sections, leaf = name.split(".")
        target = nested
        for section in sections:
            target = target.setdefault(section, {})
        target[leaf] = list(value) if isinstance(value, tuple) else value
    path = folder / "vltseg_node.yaml"
    path.write_text(yaml.safe_dump({"/**/vltseg_node": {"ros__parameters": nested}}))
    return path


def node_command(params_file: Path, ros_args: Sequence[str] = ()) -> list[str]:
    """The command that runs vltseg_node with this interpreter and ``params_file``; ``ros_args``
    (remaps, more params files) follow it."""
    return [
        sys.executable,
        "-m",
        "vltseg_ros.ros.node.vltseg_node",
        "--ros-args",
        "--params-file",
        str(params_file),
        *ros_args,
    ]


def run_live_replay(
    bag: Path,
    out: Path,
    node_overrides: dict[str, Any],
    *,
    rate: float = 1.0,
    lockstep: bool = False,
    output_bag: Path | None = None,
    save_overlays: bool = False,
    idle_timeout: float = 10.0,
) -> EvaluationReport:
    """Play ``bag`` into a fresh node process and score its masks; writes into ``out``.

    Args:
        bag: the input bag (images, and labels for scoring).
        out: folder for report.md / .json / charts, the output bag and node.log.
        node_overrides: vltseg_node parameters (model, checkpoint, device, inference, ...).
        rate: timed playback speed factor (ignored with ``lockstep``).
        lockstep: publish the next frame only after the node's mask of the previous one.
        output_bag: where to record inputs and outputs (default ``out/segmented``).
        save_overlays: also write every overlay as ``out/overlays/<frame name>.png``
            (:mod:`vltseg_ros.bag.frame_names`).
        idle_timeout: seconds without progress, with the node idle, after which the recorder
            stops waiting for frames lost in transport.

    Raises:
        ReplayError: the node process died (its log is in ``out/node.log``).
    """
    out.mkdir(parents=True, exist_ok=True)
    environment = {**large_data_environment(), "ROS_LOG_DIR": str(out / "ros_log")}
    os.environ.update(environment)
    with tempfile.TemporaryDirectory() as tmp:
        camera = bag_camera(str(bag))
        params = {**node_overrides, "use_sim_time": True, **camera.parameters}
        params_file = write_params_file(Path(tmp), params)
        remaps = [arg for rule in camera.remappings for arg in ("-r", f"{rule[0]}:={rule[1]}")]
        with (out / "node.log").open("w") as log:
            node = subprocess.Popen(
                node_command(params_file, remaps),
                env={**os.environ, **environment},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                options = {
                    "rate": rate,
                    "lockstep": lockstep,
                    "output_bag": output_bag,
                    "save_overlays": save_overlays,
                    "idle_timeout": idle_timeout,
                }
                return _play_and_record(bag, out, node, options)
            finally:
                node.terminate()
                try:
                    node.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.kill()


def _play_and_record(
    bag: Path, out: Path, node: subprocess.Popen, options: dict[str, Any]
) -> EvaluationReport:
    """Player and recorder in this process, spun by one executor, until the recorder is done;
    stops at once (:class:`ReplayError`) when the node's process exits or the executor's
    thread dies. rclpy installs no signal handlers: Ctrl-C and SIGTERM stay the command's
    (``KeyboardInterrupt``), and the nodes are destroyed after the executor stopped."""
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    made: list[Any] = []  # the nodes made, destroyed after the executor stopped
    try:
        player = BagPlayer(
            parameter_overrides=[
                Parameter("bag", value=str(bag)),
                Parameter("rate", value=float(options["rate"])),
                Parameter("lockstep", value=bool(options["lockstep"])),
                Parameter("mask_topic", value=f"/{MASK}"),
                Parameter("subscriber_timeout", value=600.0),
            ]
        )
        made.append(player)
        recorder = ReplayRecorder(
            parameter_overrides=[
                Parameter("bag", value=str(bag)),
                Parameter("out", value=str(out)),
                Parameter("camera", value=f"/{CAMERA}"),
                Parameter("idle_timeout", value=float(options["idle_timeout"])),
                Parameter("output_bag", value=str(options["output_bag"] or "")),
                Parameter("save_overlays", value=bool(options["save_overlays"])),
            ]
        )
        made.append(recorder)
        spinner = Spinner(made, on_failure=player.stop).start()
        try:
            return _replay(player, recorder, spinner, node, out)
        finally:
            player.stop("the live replay ended")  # a no-op once the bag was played
            spinner.stop()
    finally:
        for made_node in made:
            made_node.destroy_node()
        rclpy.try_shutdown()


def _replay(
    player: BagPlayer,
    recorder: ReplayRecorder,
    spinner: Spinner,
    node: subprocess.Popen,
    out: Path,
) -> EvaluationReport:
    """Wait for the node and the recorder, play, and wait for the recorder's report."""

    def gone() -> str | None:
        if node.poll() is not None:
            return f"vltseg_node exited with code {node.returncode}"
        return spinner.failure()

    wait_until_active(recorder, "/vltseg_node", gone=gone, details=lambda: _tail(out / "node.log"))
    wait_for_ready(player, f"/{recorder.get_name()}/ready", timeout=60.0, gone=gone)
    playing = threading.Thread(target=_play, args=(player,), name="bag-player", daemon=True)
    playing.start()
    try:
        while not recorder.done.wait(0.5):
            if reason := gone():
                raise ReplayError(f"{reason}; see {out / 'node.log'}")
            if player.error is not None:
                raise ReplayError(f"playing {player.bag} failed: {player.error}") from player.error
        return recorder.finish()
    finally:
        player.stop("the live replay ended")
        playing.join(timeout=10.0)


def _play(player: BagPlayer) -> None:
    """:meth:`BagPlayer.play` in a thread: its error is kept in ``player.error`` (and reported
    by :func:`_replay`), not printed as an uncaught exception of the thread."""
    with contextlib.suppress(BaseException):
        player.play()


def _tail(log: Path, lines: int = 8) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    return "\n".join(text[-lines:]) or "(no output)"
