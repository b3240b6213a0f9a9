"""``vltseg calibrate``: fit a checkpoint's temperature and domain-shift reference on labelled
held-out frames (a data set split or a bag with labels) and write a calibrated copy.

See :mod:`vltseg_ros.evaluation.fit_calibration` for what is measured.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from vltseg_ros.cli.common import add_model_arguments, add_options, load_segmenter, options_from
from vltseg_ros.config.model_config import load_model_config
from vltseg_ros.data import DATASET_NAMES, build_dataset, parse_dataset_spec
from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.calibration import reliability_diagram
from vltseg_ros.evaluation.dataset_eval import selected_indices
from vltseg_ros.evaluation.fit_calibration import LabelledFrames, ece_line, fit_calibration
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.io.files import staged
from vltseg_ros.model.checkpoint import save_with_calibration


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` subcommand."""
    parser = subparsers.add_parser(
        "calibrate",
        help="fit a temperature (and the domain-shift reference) on labelled held-out frames",
        description="Fit the temperature that minimizes the negative log-likelihood of the "
        "labelled pixels of --dataset or --bag, measure the expected calibration error (15 "
        "bins) before and after and each frame's mean confidence and anomaly fraction, and "
        "write a copy of --checkpoint with all of it in its metadata (--out, default in the "
        "working directory), plus reliability_before.png, reliability_after.png and "
        "calibration.json (--report). Each file is written whole or not at all.",
    )
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--dataset",
        metavar="NAME:ROOT",
        help=f"a labelled data set (NAME: {', '.join(DATASET_NAMES)}), split --split",
    )
    data.add_argument("--bag", type=Path, help="a rosbag2 with a mono8 label topic")
    parser.add_argument("--split", default="val", help="data set split (default val)")
    parser.add_argument("--image-topic", help="bag camera topic (default: the only one)")
    parser.add_argument("--label-topic", help="bag label topic (default: the one named *label*)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N frames")
    parser.add_argument(
        "--pixels-per-frame",
        type=int,
        default=20_000,
        metavar="N",
        help="labelled pixels per frame the temperature is fitted on (random, seeded; "
        "default 20000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="calibrated checkpoint (default: <checkpoint stem>_calibrated.safetensors in the "
        "working directory)",
    )
    parser.add_argument(
        "--report", type=Path, help="report folder (default: calibration_<checkpoint stem>)"
    )
    add_options(parser, OutputSettings, ("anomaly_method", "anomaly_threshold"))
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Calibrate, write the checkpoint and the report, print the ECE line; returns 0."""
    if not args.checkpoint:
        raise ConfigError("vltseg calibrate needs --checkpoint (the weights to calibrate)")
    checkpoint = Path(args.checkpoint)
    if checkpoint.suffix.lower() == ".onnx":
        raise ConfigError(
            "calibrate the .safetensors checkpoint, then export it: the export carries the "
            "calibration"
        )
    if args.pixels_per_frame < 1 or (args.limit is not None and args.limit < 1):
        raise ConfigError("--pixels-per-frame and --limit must be >= 1")
    out = args.out or Path(f"{checkpoint.stem}_calibrated.safetensors")  # never in a package
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out} must be a .safetensors file")
    frames, source = _frames(args)
    outputs = options_from(args, OutputSettings)
    segmenter = load_segmenter(args)
    try:
        fit = fit_calibration(
            segmenter,
            frames,
            source=source,
            anomaly_method=outputs.anomaly_method,
            anomaly_threshold=outputs.anomaly_threshold,
            pixels_per_frame=args.pixels_per_frame,
        )
    finally:
        segmenter.close()
    model = load_model_config(args.model) if args.model else None
    save_with_calibration(checkpoint, out, fit.calibration, model)
    report = args.report or Path(f"calibration_{checkpoint.stem}")
    summary = {
        "checkpoint": str(checkpoint),
        "calibrated_checkpoint": str(out),
        "calibration": asdict(fit.calibration),
        "before": fit.before.to_dict(),
        "after": fit.after.to_dict(),
    }
    with staged(report, "calibration") as stage:  # the three files, or none
        before, after = stage / "reliability_before.png", stage / "reliability_after.png"
        reliability_diagram(fit.before, before, "before (temperature 1)")
        title = f"after (temperature {fit.calibration.temperature:.3f})"
        reliability_diagram(fit.after, after, title)
        (stage / "calibration.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(ece_line(fit))
    print(f"calibrated checkpoint: {out}")
    print(f"report: {report} (reliability_before.png, reliability_after.png, calibration.json)")
    return 0


def _frames(args: argparse.Namespace) -> tuple[LabelledFrames, str]:
    """The labelled frames (checked before the model loads) and a description of them."""
    if args.dataset:
        name, root = parse_dataset_spec(args.dataset)
        dataset = build_dataset(name, root, args.split)
        indices = selected_indices(dataset, args.limit)

        def dataset_frames() -> Iterable[tuple[np.ndarray, str, np.ndarray]]:
            for index in indices:
                item = dataset[index]
                yield item["image"], "rgb", item["labels"]

        return dataset_frames, f"{args.dataset}, {args.split} split"
    from vltseg_ros.bag import require_rosbags

    require_rosbags()
    from vltseg_ros.bag.reading import iter_frames
    from vltseg_ros.bag.topics import find_topics

    topics = find_topics(args.bag, args.image_topic, args.label_topic)
    if topics.label_topic is None:
        raise ConfigError(f"bag {args.bag} has no label topic (name one with --label-topic)")

    def bag_frames() -> Iterable[tuple[np.ndarray, str, np.ndarray]]:
        count = 0
        for frame in iter_frames(args.bag, topics.image_topic, topics.label_topic):
            if frame.label is None:
                continue
            yield frame.image, frame.color_order, frame.label
            count += 1
            if args.limit is not None and count >= args.limit:
                return

    return bag_frames, f"bag {args.bag}"
