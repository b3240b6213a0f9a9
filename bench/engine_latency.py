"""Latency per engine and precision: one 512x512 crop, and a 1024x2048 frame by sliding window.

    .venv/bin/python bench/engine_latency.py [--models tiny vit-b-16 eva02-l-14]
        [--device cpu|cuda] [--engines pytorch onnxruntime] [--compile] [--repeats 3]
        [--frame-repeats 1] [--write docs/benchmarks.md]

For every model (random weights, seed 0; crop 512, stride 426 for all, so a 1024x2048 frame is
3 x 5 = 15 crops) and every engine variant the device has:

- CPU: PyTorch fp32 (with ``--compile`` also through ``torch.compile``), ONNX Runtime fp32
  (CPU provider);
- CUDA: PyTorch fp32 / fp16 / bf16 (autocast; bf16 where the GPU has it; with ``--compile``
  also fp16 through ``torch.compile``), ONNX Runtime CUDA fp32, CUDA with the fp16 export, and
  TensorRT fp32 / fp16 when onnxruntime-gpu has the TensorRT provider (an onnxruntime without
  the CUDA provider: the ONNX Runtime rows are left out, and the output says so);

it measures the engine alone on one crop (batch 1), and ``Segmenter.predict`` on the frame
(the real Cityscapes 2048x1024 frame when ``../shared/data`` is present) with batch 1 and with
all 15 crops in one batch, the engine's share of that time included. The variants take turns
in every round, so machine noise hits them alike; the first call of each (TensorRT build,
allocations, compilation) is excluded and reported apart (on CUDA and when compiled a first,
untimed batch of all crops follows it). Accuracy against PyTorch fp32 on the same inputs is
printed beside the times. ``--write`` puts the tables into a Markdown file (between markers,
one section per device).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine import describe_machine, write_section
from vltseg_ros.config.model_config import ModelConfig, load_model_config
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.engines import (
    Engine,
    OnnxRuntimeEngine,
    OnnxRuntimeOptions,
    TorchEngine,
    TorchOptions,
)
from vltseg_ros.export.onnx_export import export_onnx
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.tiling import slide_windows
from vltseg_ros.model.segmentor import VLTSeg

# ../shared/data beside the checkout, or the folder VLTSEG_SHARED_DATA names (as in the tests)
SHARED = Path(__file__).resolve().parents[2] / "shared/data"
FRAME = Path(os.environ.get("VLTSEG_SHARED_DATA", SHARED)) / "frames"
FRAME_FILE = "cityscapes_frankfurt_000001_055709_leftImg8bit.png"
CROP, STRIDE = (512, 512), (426, 426)


class TimedEngine(Engine):
    """Wraps an engine and adds up the seconds its calls take (GPU synchronized)."""

    def __init__(self, engine: Engine) -> None:
        self.inner, self.seconds = engine, 0.0
        self.name, self.config = engine.name, engine.config
        self.device, self.precision = engine.device, engine.precision

    patch_size = property(lambda self: self.inner.patch_size)
    input_size = property(lambda self: self.inner.input_size)
    batch_size = property(lambda self: self.inner.batch_size)
    description = property(lambda self: self.inner.description)

    def __call__(self, inputs: Tensor) -> Tensor:
        started = time.perf_counter()
        scores = self.inner(inputs)
        _sync(self.device)
        self.seconds += time.perf_counter() - started
        return scores

    def close(self) -> None:
        self.inner.close()


@dataclasses.dataclass
class Variant:
    """One engine configuration and its measurements (seconds)."""

    label: str
    precision: str
    make: Callable[[], Engine]
    export: str | None = None  # the ONNX export it runs: "fp32", "fp16" or none (PyTorch)
    engine: TimedEngine | None = None
    first_call: float = 0.0
    crop: list[float] = dataclasses.field(default_factory=list)
    frame: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    frame_engine: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    labels: np.ndarray | None = None
    score_diff: float = float("nan")
    label_agreement: float = float("nan")


def variants(
    model: VLTSeg, onnx: dict[str, Path], device: str, crops: int, args: argparse.Namespace
) -> list[Variant]:
    """The engine variants of ``args.engines`` this device can run, PyTorch fp32 first (the
    reference of the accuracy columns)."""
    found = [Variant("pytorch", "fp32", lambda: TorchEngine(model, device, "fp32"))]
    if device != "cpu":
        found.append(Variant("pytorch", "fp16", lambda: TorchEngine(model, device, "fp16")))
        if torch.cuda.is_bf16_supported():
            found.append(Variant("pytorch", "bf16", lambda: TorchEngine(model, device, "bf16")))
    if args.compile:
        precision = "fp32" if device == "cpu" else "fp16"
        found.append(
            Variant(
                "pytorch compiled",
                precision,
                lambda: TorchEngine(model, device, precision, TorchOptions(compile=True)),
            )
        )
    if "onnxruntime" in args.engines:
        found += onnxruntime_variants(onnx, device, crops)
    return found


def onnxruntime_variants(onnx: dict[str, Path], device: str, crops: int) -> list[Variant]:
    """ONNX Runtime on the CPU provider, or on CUDA (fp32, fp16 export) and TensorRT."""
    import onnxruntime

    cache = onnx["fp32"].parent / "trt"

    def ort(label: str, precision: str, providers: str, export: str) -> Variant:
        def make() -> Engine:
            options = OnnxRuntimeOptions(providers=providers, cache_dir=str(cache))
            return OnnxRuntimeEngine(onnx[export], device, precision, options, batch_size=crops)

        return Variant(label, precision, make, export)

    if device == "cpu":
        return [ort("onnxruntime cpu", "fp32", "cpu", "fp32")]
    available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        print(
            f"onnxruntime {onnxruntime.__version__} has no CUDA provider ({available}): "
            "no ONNX Runtime rows on the GPU (install onnxruntime-gpu, requirements/gpu.txt)",
            flush=True,
        )
        return []
    found = [
        ort("onnxruntime cuda", "fp32", "cuda", "fp32"),
        ort("onnxruntime cuda (fp16 export)", "fp16", "cuda", "fp16"),
    ]
    if "TensorrtExecutionProvider" in available:
        found += [
            ort("onnxruntime tensorrt", "fp32", "tensorrt,cuda", "fp32"),
            ort("onnxruntime tensorrt", "fp16", "tensorrt,cuda", "fp32"),
        ]
    else:
        print("onnxruntime has no TensorRT provider: no TensorRT rows", flush=True)
    return found


def bench_model(name: str, args: argparse.Namespace, frame: np.ndarray) -> list[Variant]:
    """Export ``name`` and time every variant on a crop and on ``frame``."""
    config = bench_config(name)
    torch.manual_seed(0)
    model = VLTSeg(config).eval()
    crops = len(slide_windows(frame.shape[:2], CROP, STRIDE))
    with tempfile.TemporaryDirectory() as tmp:
        onnx = {"fp32": Path(tmp) / "fp32.onnx", "fp16": Path(tmp) / "fp16.onnx"}
        found = variants(model, onnx, args.device, crops, args)
        exports = sorted({v.export for v in found if v.export})
        if exports:
            started = time.perf_counter()
            for precision in exports:
                export_onnx(model, onnx[precision], fp16=precision == "fp16")
            print(f"{name}: exported in {time.perf_counter() - started:.0f} s", flush=True)
        crop = torch.randn(1, 3, *CROP, generator=torch.Generator().manual_seed(1))
        for variant in found:
            variant.engine = TimedEngine(variant.make())
            started = time.perf_counter()
            variant.engine(crop.to(variant.engine.device))
            variant.first_call = time.perf_counter() - started
            if args.device != "cpu" or variant.label == "pytorch compiled":
                # A batch of all crops: its own kernels / compilation.
                variant.engine(crop.repeat(crops, 1, 1, 1).to(variant.engine.device))
        for _ in range(args.repeats):
            for variant in found:
                variant.crop.append(_seconds(variant.engine, crop))
        for batch in (1, crops):
            for _ in range(args.frame_repeats):
                for variant in found:
                    _time_frame(variant, frame, batch)
        _accuracy(found, crop)
        for variant in found:
            variant.engine.close()
    return found


def bench_config(name: str) -> ModelConfig:
    config = load_model_config(name)
    inference = dataclasses.replace(
        config.inference,
        mode="slide",
        crop_size=CROP,
        stride=STRIDE,
        whole_size=None,
        test_scale=None,
    )
    return config.replace(inference=inference)


def _seconds(engine: TimedEngine, crop: Tensor) -> float:
    before = engine.seconds
    engine(crop.to(engine.device))
    return engine.seconds - before


def _time_frame(variant: Variant, frame: np.ndarray, batch: int) -> None:
    segmenter = Segmenter(variant.engine, batch_size=batch)
    before = variant.engine.seconds
    started = time.perf_counter()
    variant.labels = segmenter.predict(frame).labels
    variant.frame.setdefault(batch, []).append(time.perf_counter() - started)
    variant.frame_engine.setdefault(batch, []).append(variant.engine.seconds - before)


def _accuracy(found: list[Variant], crop: Tensor) -> None:
    """Scores on the crop and labels on the frame (of the last timed run) against the first
    variant (PyTorch fp32)."""
    reference = found[0].engine(crop.to(found[0].engine.device)).cpu()
    for variant in found:
        scores = variant.engine(crop.to(variant.engine.device)).cpu()
        variant.score_diff = (scores - reference).abs().max().item()
        variant.label_agreement = float((variant.labels == found[0].labels).mean())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_frame() -> tuple[np.ndarray, str]:
    path = FRAME / FRAME_FILE
    if path.is_file():
        return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].copy(), FRAME_FILE
    return synthetic_street_scene(1024, 2048, seed=1)[0], "a generated 1024x2048 street scene"


def tables(results: dict[str, list[Variant]], crops: int) -> str:
    """The latency table and the ratio table, Markdown."""
    med = statistics.median
    lines = [
        f"| model | engine | precision | first call (s) | crop, batch 1 (ms) | frame, batch 1 "
        f"(s) | frame, batch {crops} (s) | engine share | frames/s | max score diff | "
        "labels = PyTorch fp32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, found in results.items():
        for v in found:
            share = med(v.frame_engine[crops]) / med(v.frame[crops])
            lines.append(
                f"| {model} | {v.label} | {v.precision} | {v.first_call:.2f} | "
                f"{1000 * med(v.crop):.1f} | {med(v.frame[1]):.3f} | {med(v.frame[crops]):.3f} | "
                f"{share:.0%} | {1 / med(v.frame[crops]):.2f} | {v.score_diff:.1e} | "
                f"{v.label_agreement:.4%} |"
            )
    lines += [
        "",
        f"| model | engine | speed-up vs PyTorch fp32: crop | frame, batch 1 | frame, batch "
        f"{crops} |",
        "|---|---|---|---|---|",
    ]
    for model, found in results.items():
        base = found[0]
        for v in found[1:]:
            lines.append(
                f"| {model} | {v.label} {v.precision} | {med(base.crop) / med(v.crop):.2f}x | "
                f"{med(base.frame[1]) / med(v.frame[1]):.2f}x | "
                f"{med(base.frame[crops]) / med(v.frame[crops]):.2f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b-16", "eva02-l-14"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=["pytorch", "onnxruntime"],
        default=["pytorch", "onnxruntime"],
        help="backends to measure (PyTorch fp32 always)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also PyTorch through torch.compile (fp32 on the CPU, fp16 on CUDA)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds on the crop")
    parser.add_argument("--frame-repeats", type=int, default=1, help="rounds on the frame")
    parser.add_argument("--write", type=Path, help="Markdown file to put the tables into")
    args = parser.parse_args()
    frame, frame_name = load_frame()
    results = {name: bench_model(name, args, frame) for name in args.models}
    crops = max(results[args.models[0]][0].frame)
    text = (
        f"### Engines on {args.device}: {describe_machine()}\n\n"
        f"Random weights; crop {CROP[0]}x{CROP[1]}, stride {STRIDE[0]}: the {frame.shape[0]}x"
        f"{frame.shape[1]} frame ({frame_name}) is {crops} crops; medians of {args.repeats} "
        f"crop and {args.frame_repeats} frame rounds; frame = `Segmenter.predict` (normalize, "
        "crops, engine, stitching, scores resized to the frame, argmax); engine share = the "
        "engine's part of the frame time.\n\n" + tables(results, crops)
    )
    print(text)
    if args.write:
        write_section(args.write, f"engines-{args.device}", text)


if __name__ == "__main__":
    main()
