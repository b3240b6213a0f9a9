"""The node's overhead: end-to-end latency (input stamp to mask received) minus engine time.

    .venv/bin/python bench/node_latency.py [--frames 5] [--models tiny vit-b-16]

For each model and 1 or 2 cameras, vltseg_node runs in its own process (Fast DDS large-data
profile); this process publishes 1024x2048 rgb8 frames (one per camera at once, the next only
after every result arrived, so nothing queues) and receives masks and info messages. Per frame:

- engine: ``SegmentationInfo.inference_latency`` (the batch's Segmenter.predict_batch call,
  which includes up-sampling the scores to 1024x2048 and the argmax);
- in node: ``end_to_end_latency - inference_latency`` (waiting in the slot, decoding, message
  building and publishing inside the node, up to publishing the info message);
- overhead: end-to-end minus engine (the in-node part plus both transports), per frame and as a
  fraction of engine time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test.ros.harness import NodeProcess, camera_frame, ros_environment
from vltseg_ros.msg import SegmentationInfo
from vltseg_ros.ros.node.messages import array_to_image

INFERENCE = {
    "tiny": {"mode": "whole", "whole_size": [256, 512]},
    "vit-b-16": {"mode": "whole", "whole_size": [512, 1024]},
}


def run(model: str, cameras: list[str], frames: int, workdir: Path) -> dict[str, float]:
    """Medians over ``frames`` rounds of one frame per camera; latencies in seconds."""
    env = ros_environment(workdir)
    os.environ.update(env)
    # Reliable input (the qos.input override): a lost best-effort frame would stall the
    # one-frame-at-a-time measurement; with one frame in flight reliability adds no queueing.
    params = {
        "model": model,
        "cameras": cameras,
        "inference": INFERENCE[model],
        "qos": {"input": {"reliability": "reliable"}},
    }
    node_proc = NodeProcess(workdir, params, env)
    rclpy.init()
    peer = Node("bench_peer")
    arrivals: dict[tuple[str, int, int], float] = {}
    infos: dict[tuple[str, int, int], SegmentationInfo] = {}
    lock = threading.Lock()

    def on_mask(msg: Image) -> None:
        with lock:
            arrivals[(msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec)] = (
                peer.get_clock().now().nanoseconds * 1e-9
            )

    def on_info(msg: SegmentationInfo) -> None:
        with lock:
            infos[(msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

    publishers = {}
    for camera in cameras:
        peer.create_subscription(Image, f"{camera}/segmentation/mask", on_mask, 10)
        peer.create_subscription(SegmentationInfo, f"{camera}/segmentation/info", on_info, 10)
        publishers[camera] = peer.create_publisher(Image, f"{camera}/image_raw", 1)
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    threading.Thread(target=executor.spin, daemon=True).start()
    image = camera_frame(1024, 2048)
    try:
        deadline = time.monotonic() + 120
        while any(p.get_subscription_count() == 0 for p in publishers.values()):
            if time.monotonic() > deadline or not node_proc.alive():
                raise RuntimeError(f"node did not come up:\n{node_proc.log()[-2000:]}")
            time.sleep(0.05)
        rows = []
        for i in range(frames + 1):  # the first round warms up and is not counted
            keys = []
            for camera in cameras:
                stamp = peer.get_clock().now().to_msg()
                msg = array_to_image(image, "rgb8", Header(stamp=stamp, frame_id=camera))
                publishers[camera].publish(msg)
                keys.append((camera, stamp.sec, stamp.nanosec))
            wait = time.monotonic() + 600
            while not all(k in arrivals and k in infos for k in keys):
                if time.monotonic() > wait:
                    raise RuntimeError("no result within 600 s")
                time.sleep(0.002)
            if i == 0:
                continue
            for key in keys:
                info = infos[key]
                e2e = arrivals[key] - (key[1] + key[2] * 1e-9)
                rows.append((e2e, info.inference_latency, info.end_to_end_latency))
    finally:
        executor.shutdown()
        peer.destroy_node()
        rclpy.try_shutdown()
        node_proc.stop()
    e2e = statistics.median(r[0] for r in rows)
    engine = statistics.median(r[1] for r in rows)
    node = statistics.median(r[2] - r[1] for r in rows)
    return {"e2e": e2e, "engine": engine, "node": node}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b-16"])
    parser.add_argument("--frames", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, CPU, "
        "1024x2048 rgb8 input, output at input resolution (scores upsampled)"
    )
    print(f"{args.frames} rounds per row, median; latencies in ms\n")
    print(
        "| model | inference | cameras | end-to-end | engine | in node | overhead | "
        "overhead / engine |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for cameras in (["front"], ["front", "rear"]):
            with tempfile.TemporaryDirectory() as tmp:
                r = run(model, cameras, args.frames, Path(tmp))
            overhead = r["e2e"] - r["engine"]
            mode = "{mode} {whole_size[0]}x{whole_size[1]}".format(**INFERENCE[model])
            print(
                f"| {model} | {mode} | {len(cameras)} | {r['e2e'] * 1e3:.1f} | "
                f"{r['engine'] * 1e3:.1f} | {r['node'] * 1e3:.1f} | {overhead * 1e3:.1f} | "
                f"{overhead / r['engine']:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
