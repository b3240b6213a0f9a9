"""Command-line options shared by subcommands that run a model."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vltseg_ros.config import DEFAULT_MODEL, available_models
from vltseg_ros.engines import BACKENDS, resolve_backend
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.predictor import Segmenter


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--checkpoint / --model, backend, device, precision and inference-mode options."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--checkpoint",
        help="weights: a vltseg .safetensors file (or a .pt state dict + --model), or an "
        "exported .onnx model (onnxruntime backend)",
    )
    group.add_argument(
        "--model",
        help=f"built-in architecture ({', '.join(available_models())}) or a YAML config file; "
        f"default {DEFAULT_MODEL} when no checkpoint is given",
    )
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    group.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    group.add_argument("--batch-size", type=int, default=4, help="crops per forward pass")
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help="inference engine (default: onnxruntime for a .onnx checkpoint, else pytorch)",
    )
    torch_group = parser.add_argument_group("pytorch backend")
    torch_group.add_argument(
        "--channels-last",
        action="store_true",
        help="convolutions in channels-last memory format (try it on GPUs; no gain on CPUs)",
    )
    torch_group.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: the first call compiles (tens of seconds to minutes); "
        "batches are padded to --batch-size so that one graph serves every call",
    )
    onnx = parser.add_argument_group("onnxruntime backend")
    onnx.add_argument(
        "--providers",
        metavar="LIST",
        help="execution providers in priority order, comma-separated (tensorrt,cuda,cpu); "
        "default: every available one for the device",
    )
    onnx.add_argument(
        "--trt-cache",
        type=Path,
        metavar="DIR",
        help="TensorRT engine cache folder (the first build takes minutes; later runs reuse it)",
    )
    onnx.add_argument(
        "--onnx-threads", type=int, metavar="N", help="CPU threads per inference (default: all)"
    )
    infer = parser.add_argument_group("inference (defaults come from the model config)")
    infer.add_argument("--mode", choices=("slide", "whole"))
    infer.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), help="slide crop size")
    infer.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"), help="slide stride")
    infer.add_argument(
        "--test-scale",
        type=int,
        nargs=2,
        metavar=("LONG", "SHORT"),
        help="rescale frames (keeping aspect) to fit LONGxSHORT before sliding",
    )
    infer.add_argument(
        "--whole-size", type=int, nargs=2, metavar=("H", "W"), help="network input in whole mode"
    )


def load_segmenter(args: argparse.Namespace) -> Segmenter:
    """Build the Segmenter the options describe; warns loudly when weights are random."""
    model = args.model or (None if args.checkpoint else DEFAULT_MODEL)
    segmenter = Segmenter.load(
        model,
        args.checkpoint,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        **engine_options(args),
    )
    overrides = inference_overrides(args)
    if overrides:
        segmenter.inference = dataclasses.replace(segmenter.inference, **overrides)
    if segmenter.random_weights:
        warn_random_weights(segmenter.config.name)
    return segmenter


def engine_options(args: argparse.Namespace) -> dict[str, object]:
    """The backend options given (--channels-last, --compile; --providers, --trt-cache,
    --onnx-threads) as ``create_engine`` keywords.

    Raises:
        ConfigError: an option of the other backend than the one resolved from --backend and
            --checkpoint.
    """
    backend = resolve_backend(args.backend, args.checkpoint)
    options = {
        "pytorch": {
            "--channels-last": ("channels_last", args.channels_last or None),
            "--compile": ("compile", args.compile or None),
        },
        "onnxruntime": {
            "--providers": ("providers", args.providers),
            "--trt-cache": ("cache_dir", args.trt_cache),
            "--onnx-threads": ("threads", args.onnx_threads),
        },
    }
    for other, flags in options.items():
        given = [flag for flag, (_, value) in flags.items() if value is not None]
        if given and other != backend:
            raise ConfigError(f"{', '.join(given)} apply to the {other} backend only")
    return {key: value for key, value in options[backend].values() if value is not None}


def inference_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The inference options given on the command line, as InferenceConfig fields."""
    overrides = {
        "mode": args.mode,
        "crop_size": tuple(args.crop) if args.crop else None,
        "stride": tuple(args.stride) if args.stride else None,
        "test_scale": tuple(args.test_scale) if args.test_scale else None,
        "whole_size": tuple(args.whole_size) if args.whole_size else None,
    }
    return {k: v for k, v in overrides.items() if v is not None}


def warn_random_weights(model: str) -> None:
    """A banner on stderr: without a checkpoint every output is meaningless."""
    print(
        "\n" + "!" * 78 + "\n"
        f"!! WARNING: no --checkpoint given. Model '{model}' has RANDOM\n"
        "!! weights: every output below is meaningless noise. Pass --checkpoint FILE\n"
        "!! (a vltseg .safetensors checkpoint) for real segmentation.\n" + "!" * 78 + "\n",
        file=sys.stderr,
    )
