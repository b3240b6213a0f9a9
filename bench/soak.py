"""Soak: does vltseg_node's memory stay flat over many frames, good and hostile?

    .venv/bin/python bench/soak.py [--frames 10000] [--size 512 1024] [--bad-every 10]

vltseg_node runs in its own process (tiny model, whole mode 64x128, Fast DDS large-data
profile, reliable input). This process sends rgb8 frames on camera ``front`` as fast as the
node keeps up (the next frame once the previous mask arrived: the highest sustained rate, no
frame dropped), and every ``--bad-every``-th round also a hostile frame on the compressed
camera ``hostile``, cycling through a JPEG decompression bomb (20000 x 20000 declared), a PNG
bomb, a truncated JPEG, garbage bytes and an empty message. The node's resident memory
(``VmRSS`` of /proc) is sampled every ``--every`` seconds; the table shows it, and the growth
from the end of the warm-up (the first ``--warmup`` frames) to the end. Goal: under 2 % over
10,000 frames.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test.io.test_image_files import jpeg_bomb, png_bomb
from test.ros.harness import NodeProcess, camera_frame, ros_environment
from vltseg_ros.ros.node.messages import array_to_image

PARAMS = {
    "model": "tiny",
    "inference": {"mode": "whole", "whole_size": [64, 128]},
    "cameras": ["front", "hostile"],
    "hostile": {"transport": "compressed"},
    "qos": {"input": {"reliability": "reliable"}},
    "max_age": 0.0,
    "diagnostics_period": 1.0,
}


def hostile_payloads() -> list[tuple[str, bytes]]:
    """(name, CompressedImage data) of each kind of hostile frame."""
    ok, jpeg = cv2.imencode(".jpg", np.full((64, 128, 3), 90, np.uint8))
    assert ok
    jpeg = jpeg.tobytes()
    return [
        ("jpeg bomb", jpeg_bomb()),
        ("png bomb", png_bomb()),
        ("truncated jpeg", jpeg[: len(jpeg) // 2]),
        ("garbage", bytes(range(256)) * 8),
        ("empty", b""),
    ]


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class Peer:
    """Publishes frames, waits for masks, keeps the newest diagnostics of each camera."""

    def __init__(self) -> None:
        self.node = Node("soak_peer")
        self.masks = 0
        self.diagnostics: dict[str, dict[str, str]] = {}
        self._arrived = threading.Condition()
        self.node.create_subscription(Image, "front/segmentation/mask", self._on_mask, 10)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.front = self.node.create_publisher(Image, "front/image_raw", 1)
        self.hostile = self.node.create_publisher(
            CompressedImage, "hostile/image_raw/compressed", 1
        )
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        threading.Thread(target=self._executor.spin, daemon=True).start()

    def _on_mask(self, msg: Image) -> None:
        with self._arrived:
            self.masks += 1
            self._arrived.notify_all()

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            camera = status.name.rsplit("camera ", 1)[-1]
            self.diagnostics[camera] = {kv.key: kv.value for kv in status.values}

    def wait_for_masks(self, count: int, timeout: float) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.masks >= count, timeout):
                raise RuntimeError(f"mask {count} did not arrive within {timeout:.0f} s")

    def header(self, frame_id: str) -> Header:
        return Header(stamp=self.node.get_clock().now().to_msg(), frame_id=frame_id)

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()


def soak(args: argparse.Namespace, workdir: Path) -> None:
    env = ros_environment(workdir)
    os.environ.update(env)
    node = NodeProcess(workdir, PARAMS, env)
    rclpy.init()
    peer = Peer()
    image = array_to_image(camera_frame(*args.size), "rgb8", peer.header("front"))
    hostile = hostile_payloads()
    samples: list[tuple[float, int, float]] = []
    try:
        deadline = time.monotonic() + 120
        while (
            peer.front.get_subscription_count() == 0 or peer.hostile.get_subscription_count() == 0
        ):
            if time.monotonic() > deadline or not node.alive():
                raise RuntimeError(f"node did not come up:\n{node.log()[-2000:]}")
            time.sleep(0.05)
        started = last_sample = time.monotonic()
        samples.append((0.0, 0, rss_mib(node.process.pid)))
        for frame in range(1, args.frames + 1):
            if args.bad_every and frame % args.bad_every == 0:
                _, data = hostile[(frame // args.bad_every) % len(hostile)]
                peer.hostile.publish(
                    CompressedImage(header=peer.header("hostile"), format="jpeg", data=data)
                )
            image.header = peer.header("front")
            peer.front.publish(image)
            peer.wait_for_masks(frame, timeout=60)
            now = time.monotonic()
            if now - last_sample >= args.every or frame in (args.warmup, args.frames):
                samples.append((now - started, frame, rss_mib(node.process.pid)))
                last_sample = now
            if not node.alive():
                raise RuntimeError(f"the node died:\n{node.log()[-2000:]}")
        time.sleep(2 * PARAMS["diagnostics_period"])  # the last counts
    finally:
        peer.close()
        rclpy.try_shutdown()
        node.stop()
    report(args, samples, peer.diagnostics)


def report(
    args: argparse.Namespace,
    samples: list[tuple[float, int, float]],
    diagnostics: dict[str, dict[str, str]],
) -> None:
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; node: tiny, "
        f"whole 64x128, input {args.size[0]}x{args.size[1]} rgb8, reliable, large-data "
        f"profile; a hostile frame every {args.bad_every} rounds\n"
    )
    print("| elapsed (s) | frames | frames/s | node RSS (MiB) |")
    print("|---|---|---|---|")
    previous = (0.0, 0)
    for elapsed, frames, rss in samples:
        rate = (frames - previous[1]) / (elapsed - previous[0]) if elapsed > previous[0] else 0
        print(f"| {elapsed:.0f} | {frames} | {rate:.1f} | {rss:.1f} |")
        previous = (elapsed, frames)
    warm = next(rss for _, frames, rss in samples if frames >= args.warmup)
    end = samples[-1][2]
    front, bad = diagnostics.get("front", {}), diagnostics.get("hostile", {})
    print(
        f"\nRSS after {args.warmup} warm-up frames {warm:.1f} MiB, after {samples[-1][1]} "
        f"frames {end:.1f} MiB: growth {100 * (end - warm) / warm:+.2f} % (goal: under 2 %)"
    )
    print(
        f"front: received {front.get('received')}, published {front.get('published')}, "
        f"errors {front.get('errors')}; hostile: received {bad.get('received')}, refused as "
        f"bad input {bad.get('dropped_bad_input')}, errors {bad.get('errors')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--size", type=int, nargs=2, default=[512, 1024], metavar=("H", "W"))
    parser.add_argument("--bad-every", type=int, default=10, help="0: no hostile frames")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--warmup", type=int, default=500, help="frames before the baseline")
    args = parser.parse_args()
    args.warmup = min(args.warmup, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        soak(args, Path(tmp))


if __name__ == "__main__":
    main()
