"""``vltseg segment``: segment image files and write label, confidence and overlay PNGs.

The four PNGs of an image are written together or not at all (:func:`vltseg_ros.io.files.staged`):
an interrupt or a write error (a full disk) leaves no partial result set. A write error stops
the command (exit 2, naming the file); an image that cannot be read is skipped (exit 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vltseg_ros.cli.common import add_model_arguments, add_options, load_segmenter, options_from
from vltseg_ros.config.class_map import BoundClassMap, read_class_map
from vltseg_ros.data.frame_files import unique_stems
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.data.scenes_dataset import HELD_OUT_SEED
from vltseg_ros.errors import ConfigError, InvalidImageError
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.visualize import anomaly_to_uint8, confidence_to_uint8, overlay
from vltseg_ros.io.files import staged
from vltseg_ros.io.image_files import read_image_file, write_png

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``segment`` subcommand."""
    parser = subparsers.add_parser(
        "segment",
        help="segment image files",
        description="Segment images; for each IMAGE write <stem>_labels.png (uint8 train ids, "
        "255 = below --confidence-threshold), <stem>_confidence.png (uint8, confidence x 255), "
        "<stem>_overlay.png (class colors over the image) and <stem>_anomaly.png (uint8 "
        "anomaly score, 0 = a pixel one class owns, 255 = one no class claims; rba maps "
        "[-0.76, 0], its threshold -0.5 is grey 88; docs/segmentation.md) into --out. With "
        "--class-map, labels, confidence and overlay are in the map's output classes.",
    )
    parser.add_argument("images", nargs="*", type=Path, metavar="IMAGE", help="image files")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="also segment a generated 1024x512 street scene (written as synthetic.png)",
    )
    add_options(
        parser,
        OutputSettings,
        ("confidence_threshold", "overlay_alpha", "anomaly_method", "class_map"),
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Segment every input; returns 1 if any image failed (others still run), 2 on usage."""
    if not args.images and not args.synthetic:
        print("vltseg segment: error: give at least one IMAGE or --synthetic", file=sys.stderr)
        return 2
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; give a folder for the results")
    args.out.mkdir(parents=True, exist_ok=True)
    inputs = list(args.images)
    if args.synthetic:
        image, _ = synthetic_street_scene(512, 1024, seed=HELD_OUT_SEED)  # never trained on
        inputs.append(args.out / "synthetic.png")
        write_png(inputs[-1], image[..., ::-1])
    outputs = options_from(args, OutputSettings)
    class_map = read_class_map(outputs.class_map) if outputs.class_map else None
    segmenter = load_segmenter(args)
    bound = class_map and class_map.bind(segmenter.class_set, outputs.class_map)
    failures = 0
    for path, stem in tqdm(list(zip(inputs, unique_stems(inputs), strict=True)), unit="image"):
        try:
            images = _segment_one(segmenter, read_image_file(path), outputs, bound)
        except InvalidImageError as exc:
            LOG.error("%s; skipped", exc)
            failures += 1
            continue
        with staged(args.out, stem) as stage:  # all four PNGs, or none (a write error: exit 2)
            for kind, image in images.items():
                write_png(stage / f"{stem}_{kind}.png", image)
    LOG.info("wrote %d result set(s) to %s", len(inputs) - failures, args.out)
    return 1 if failures else 0


def _segment_one(
    segmenter: Segmenter,
    bgr: np.ndarray,
    settings: OutputSettings,
    class_map: BoundClassMap | None = None,
) -> dict[str, np.ndarray]:
    """The images to write, by kind: labels, confidence, overlay (BGR), anomaly (uint8)."""
    result = segmenter.predict(
        bgr,
        "bgr",
        confidence_threshold=settings.confidence_threshold,
        anomaly_method=settings.anomaly_method,
        return_anomaly=True,
        class_map=class_map,
    )
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    classes = segmenter.class_set if class_map is None else class_map.classes
    blended = overlay(rgb, result.labels, classes, alpha=settings.overlay_alpha)
    return {
        "labels": result.labels,
        "confidence": confidence_to_uint8(result.confidence),
        "overlay": blended[..., ::-1],
        "anomaly": anomaly_to_uint8(result.anomaly, settings.anomaly_method),
    }
