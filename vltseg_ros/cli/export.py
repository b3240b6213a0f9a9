"""``vltseg export``: write a model as a self-describing ONNX file and check it."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import onnxruntime as ort
import torch

from vltseg_ros.cli.common import warn_random_weights
from vltseg_ros.config.model_config import DEFAULT_MODEL, available_models, load_model_config
from vltseg_ros.export.onnx_export import (
    INPUT_NAME,
    MAX_DYNAMIC_BATCH,
    MIN_OPSET,
    OUTPUT_NAME,
    OnnxModelInfo,
    export_onnx,
)
from vltseg_ros.export.verify import compare_with_pytorch, cpu_session
from vltseg_ros.model.checkpoint import load_model
from vltseg_ros.model.segmentor import VLTSeg

TOLERANCE = 1e-3
"""Largest ONNX Runtime vs PyTorch score difference the check accepts (fp32)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX",
        description="Export a model to a self-describing ONNX file: input 'images' (N, 3, H, "
        "W) float32 normalized RGB (one crop each), output 'scores' (N, C, H, W) float32 raw "
        "class scores; the model config, classes and normalization travel in its metadata. "
        "The file is checked with onnx.checker and, in fp32, against PyTorch with ONNX "
        "Runtime on the CPU.",
    )
    parser.add_argument(
        "--checkpoint", help="weights: a vltseg .safetensors file (or a .pt state dict + --model)"
    )
    parser.add_argument(
        "--model",
        help=f"built-in architecture ({', '.join(available_models())}) or a YAML config file; "
        f"default {DEFAULT_MODEL} when no checkpoint is given",
    )
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument(
        "--crop",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="static network input (default: the model's inference crop or whole size)",
    )
    parser.add_argument(
        "--batch",
        type=_batch,
        default=None,
        metavar="N|dynamic",
        help=f"fixed batch N, or 'dynamic' (1-{MAX_DYNAMIC_BATCH}; default)",
    )
    parser.add_argument(
        "--fp16", action="store_true", help="float16 weights and compute (float32 input/output)"
    )
    parser.add_argument(
        "--sampling",
        choices=("gather", "grid_sample"),
        default="gather",
        help="deformable-attention sampling in the graph (default gather: no GridSample, "
        "which TensorRT has computed wrongly)",
    )
    parser.add_argument(
        "--opset", type=int, default=MIN_OPSET, help=f"ONNX opset (default {MIN_OPSET})"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export, check and describe; returns 1 when ONNX Runtime disagrees with PyTorch."""
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)  # an INFO line per graph pass
    model, source = _load(args)
    started = time.perf_counter()
    info = export_onnx(
        model,
        args.out,
        input_size=tuple(args.crop) if args.crop else None,
        batch=args.batch,
        fp16=args.fp16,
        source=source,
        opset=args.opset,
        sampling=args.sampling,
    )
    seconds = time.perf_counter() - started
    print("\n".join(_describe(args, info, seconds)))
    print("onnx.checker: ok")
    session = cpu_session(args.out)
    code = 0
    if info.fp16:
        print(
            "ONNX Runtime (CPU) loads it; accuracy check skipped: fp16 numerics need a GPU "
            "(compare it there against the fp32 export)"
        )
    else:
        batch = info.batch or 2
        images = torch.randn(
            batch, 3, *info.input_size, generator=torch.Generator().manual_seed(0)
        )
        diff, scale = compare_with_pytorch(model, session, images)
        print(
            f"ONNX Runtime (CPU) vs PyTorch, random batch of {batch}: max abs diff {diff:.3g} "
            f"(scores up to {scale:.3g})"
        )
        if diff > TOLERANCE:
            print(f"ERROR: the difference exceeds {TOLERANCE:g}: do not deploy this export")
            code = 1
    print(f"ONNX Runtime providers available here: {', '.join(ort.get_available_providers())}")
    return code


def _load(args: argparse.Namespace) -> tuple[VLTSeg, str]:
    """The model the options describe and its source (checkpoint file name, "" = random)."""
    config = load_model_config(args.model) if args.model else None
    if args.checkpoint:
        return load_model(args.checkpoint, config), Path(args.checkpoint).name
    config = config or load_model_config(DEFAULT_MODEL)
    warn_random_weights(config.name)
    return VLTSeg(config), ""


def _describe(args: argparse.Namespace, info: OnnxModelInfo, seconds: float) -> list[str]:
    data = args.out.with_name(args.out.name + ".data")
    size = args.out.stat().st_size + (data.stat().st_size if data.exists() else 0)
    files = f"{args.out} + {data.name}" if data.exists() else str(args.out)
    h, w = info.input_size
    n = f"N={info.batch}" if info.batch else f"N (dynamic, 1-{MAX_DYNAMIC_BATCH})"
    norm = info.config.normalization
    return [
        f"exported {info.config.name} ({info.source or 'RANDOM weights'}) in {seconds:.1f} s",
        f"wrote {files} ({size / 2**20:.1f} MiB)",
        f"  input  {INPUT_NAME}: {n} x 3 x {h} x {w} float32, RGB normalized with mean "
        f"{list(norm.mean)}, std {list(norm.std)}",
        f"  output {OUTPUT_NAME}: {n} x {info.config.class_set.num_classes} x {h} x {w} "
        "float32, raw Mask2Former class scores",
        f"  {'fp16 (float32 input/output)' if info.fp16 else 'fp32'}, {args.sampling} "
        f"sampling, opset {args.opset}, patch {info.patch_size[0]}x{info.patch_size[1]}",
    ]


def _batch(text: str) -> int | None:
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'dynamic', got {text!r}") from None
    if not 1 <= value <= MAX_DYNAMIC_BATCH:
        raise argparse.ArgumentTypeError(f"batch must be 1-{MAX_DYNAMIC_BATCH}, got {value}")
    return value
