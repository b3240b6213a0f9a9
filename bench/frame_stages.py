"""Where a frame's time goes in the node: decode, preprocess, engine, postprocess, messages.

    .venv/bin/python bench/frame_stages.py [--models tiny vit-b-16] [--repeats 3]
        [--device cpu|cuda] [--write docs/benchmarks.md]

One 1024x2048 rgb8 frame (the real Cityscapes frame when ``../shared/data`` is present) goes
through the node's own functions in this process, with the node's defaults (slide 512 /
stride 426 = 15 crops, batch_size 4, output at input resolution with the scores resized before
the argmax, per-class summary, overlay published):

- decode: sensor_msgs/Image -> numpy view (``camera_io.decode``);
- preprocess: ``Segmenter.prepare``: validation, upload, normalization, cutting into crops;
- engine: the network on the crops (PyTorch or ONNX Runtime, fp32, on ``--device``: default
  CUDA when available);
- postprocess: the rest of ``Segmenter.predict_frames`` (stitching, score resize, argmax,
  confidence, summary) and ``frame_outputs`` (the overlay);
- messages: ``output_messages``: mask, 32FC1 confidence, rgb8 overlay and SegmentationInfo.

Transport (DDS) is not included: ``bench/node_latency.py`` measures the node end to end.
Where rclpy's message packages don't import (a GPU machine whose Python has no ROS 2 wheels),
the frame starts as an RGB array: decode and messages are not measured (CPU-only work, the same
on any machine with ROS), and the table says so.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.engine_latency import TimedEngine, bench_config, load_frame
from bench.machine import describe_machine, write_section
from vltseg_ros.engines import Engine, OnnxRuntimeEngine, OnnxRuntimeOptions, TorchEngine
from vltseg_ros.export.onnx_export import export_onnx
from vltseg_ros.inference.outputs import OutputSettings, frame_outputs
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.io.image_files import MAX_IMAGE_PIXELS
from vltseg_ros.model.segmentor import VLTSeg

STAGES = ("decode", "preprocess", "engine", "postprocess", "messages")
BATCH_SIZE = 4  # config/vltseg.yaml's default


def load_ros() -> SimpleNamespace | None:
    """The node's message functions, or None where rclpy's messages don't import."""
    try:
        from std_msgs.msg import Header

        from vltseg_ros.ros.node.camera_io import decode
        from vltseg_ros.ros.node.messages import array_to_image, output_messages
    except ImportError as error:
        print(f"no ROS 2 messages here ({error}): decode and messages not measured", flush=True)
        return None
    return SimpleNamespace(
        Header=Header, decode=decode, array_to_image=array_to_image, messages=output_messages
    )


def one_frame(
    segmenter: Segmenter,
    engine: TimedEngine,
    frame: np.ndarray,
    ros: SimpleNamespace | None,
    message: object,
) -> dict[str, float]:
    """Seconds per stage for one frame through the node's own steps: from ``message`` (an
    rgb8 sensor_msgs/Image of ``frame``) with ``ros``, else from ``frame`` ((H, W, 3) uint8
    RGB) with decode and messages NaN."""
    times: dict[str, float] = {"decode": math.nan, "messages": math.nan}
    started = time.perf_counter()
    image, order = ros.decode(message, MAX_IMAGE_PIXELS) if ros else (frame, "rgb")
    if ros:
        times["decode"] = time.perf_counter() - started
    started = time.perf_counter()
    prepared = segmenter.prepare(image, order)
    _sync(segmenter.device)
    times["preprocess"] = time.perf_counter() - started
    before, started = engine.seconds, time.perf_counter()
    settings = OutputSettings()
    (result,) = segmenter.predict_frames([prepared], **settings.predict_options())
    outputs = frame_outputs(
        result,
        image,
        order,
        settings,
        class_set=segmenter.class_set,
        with_overlay=True,
        **{"camera": "camera", "model": "bench", "checkpoint": "", "batch_frames": 1},
        inference_latency=0.0,
        end_to_end_latency=0.0,
    )
    times["engine"] = engine.seconds - before
    times["postprocess"] = time.perf_counter() - started - times["engine"]
    if ros:
        started = time.perf_counter()
        ros.messages(outputs, message.header)
        times["messages"] = time.perf_counter() - started
    return times


def engines(model: VLTSeg, folder: Path, device: str) -> dict[str, Callable[[], Engine]]:
    """PyTorch fp32 and ONNX Runtime fp32 (CPU provider, or TensorRT / CUDA on a GPU where
    onnxruntime has them)."""
    import onnxruntime

    found: dict[str, Callable[[], Engine]] = {"pytorch": lambda: TorchEngine(model, device)}
    if device != "cpu" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        print("onnxruntime has no CUDA provider here: no ONNX Runtime row", flush=True)
        return found
    path = folder / "model.onnx"
    export_onnx(model, path)
    options = OnnxRuntimeOptions(cache_dir=str(folder / "trt"))
    found[f"onnxruntime {device}"] = lambda: OnnxRuntimeEngine(
        path, device, options=options, batch_size=BATCH_SIZE
    )
    return found


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b-16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write", type=Path, help="Markdown file to put the table into")
    args = parser.parse_args()
    frame, frame_name = load_frame()
    ros = load_ros()
    message = ros.array_to_image(frame, "rgb8", ros.Header(frame_id="camera")) if ros else None
    lines = [
        "| model | engine | frame (ms) | "
        + " | ".join(f"{s} (ms)" for s in STAGES)
        + " | all but the engine |",
        "|---|---|---|" + "---|" * (len(STAGES) + 1),
    ]
    for name in args.models:
        torch.manual_seed(0)
        model = VLTSeg(bench_config(name)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            for label, make in engines(model, Path(tmp), args.device).items():
                engine = TimedEngine(make())
                segmenter = Segmenter(engine, batch_size=BATCH_SIZE)
                one_frame(segmenter, engine, frame, ros, message)  # warm-up
                runs = [
                    one_frame(segmenter, engine, frame, ros, message) for _ in range(args.repeats)
                ]
                med = {s: 1000 * statistics.median(r[s] for r in runs) for s in STAGES}
                frame_ms = sum(v for v in med.values() if not math.isnan(v))
                lines.append(
                    f"| {name} | {label} | {frame_ms:.1f} | "
                    + " | ".join("n/a" if math.isnan(med[s]) else f"{med[s]:.1f}" for s in STAGES)
                    + f" | {1 - med['engine'] / frame_ms:.1%} |"
                )
                engine.close()
    text = (
        f"### Stages of one frame in the node ({args.device}): {describe_machine()}\n\n"
        f"Random weights; {frame.shape[0]}x{frame.shape[1]} rgb8 frame ({frame_name}); "
        f"slide 512 / 426 (15 crops), batch_size {BATCH_SIZE}, output at input resolution; "
        f"medians of {args.repeats} frames after one warm-up."
        + ("" if ros else " No ROS 2 messages on this machine: decode and messages n/a.")
        + "\n\n"
        + "\n".join(lines)
    )
    print(text)
    if args.write:
        write_section(args.write, f"stages-{args.device}", text)


if __name__ == "__main__":
    main()
