"""``vltseg bag-eval``: segment a rosbag2's frames offline and score them against its labels.

The bag modules (and ``rosbags``) are imported when the command runs, so ``vltseg`` and the ML
core work on machines without them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from vltseg_ros.bag import require_rosbags
from vltseg_ros.cli.common import (
    add_model_arguments,
    add_options,
    load_segmenter,
    options_from,
    warn_random_weights,
)
from vltseg_ros.config.model_config import DEFAULT_MODEL
from vltseg_ros.config.options import values_of
from vltseg_ros.evaluation.report import markdown_table, write_report
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.settings import SegmenterSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bag-eval`` subcommand."""
    parser = subparsers.add_parser(
        "bag-eval",
        help="segment a rosbag2 offline and report mIoU, per-class IoU, ECE and latency "
        "(and AUROC, AP, FPR95 against anomaly truth)",
        description="Segment every frame of BAG (sensor_msgs/Image or CompressedImage) as fast "
        "as possible, score the masks against the labels (a mono8 label topic matched by "
        "header stamp, or --labels DIR matched by order) and the winning-class probability "
        "by its expected calibration error (15 bins), and write report.md, report.json, "
        "iou.png, confusion.png and reliability.png into --out. With anomaly truth "
        "(--anomaly-topic or --anomaly-labels) the report also holds AUROC, average precision "
        "and FPR at 95 % TPR of --anomaly-method and of max probability. With --mask-topic, "
        "masks already in the bag are scored and no model is loaded. With --class-map, "
        "labels are mapped with the map and masks, confidence, overlays and info are in its "
        "output classes: IoU and mIoU are per output class.",
    )
    parser.add_argument("bag", type=Path, metavar="BAG", help="rosbag2 directory or file")
    parser.add_argument(
        "--image-topic", help="camera topic (default: the bag's only color image topic)"
    )
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument(
        "--label-topic", help="mono8 label topic (default: the bag's topic named *label*)"
    )
    labels.add_argument(
        "--labels",
        type=Path,
        metavar="DIR",
        help="label files matched to frames by order (sorted relative paths)",
    )
    parser.add_argument(
        "--mask-topic",
        help="score the mono8 masks of this topic instead of running a model; their class ids "
        "and names come from the LabelInfo beside them (<ns>/segmentation/label_info) when the "
        "bag has one; with --class-map the masks must already be in the map's output classes "
        "(recorded with it): only the labels are mapped",
    )
    anomaly = parser.add_mutually_exclusive_group()
    anomaly.add_argument(
        "--anomaly-topic",
        help="mono8 anomaly truth topic (0 in-distribution, 1 anomaly, 255 void) matched to "
        "frames by header stamp: report AUROC, AP and FPR at 95%% TPR",
    )
    anomaly.add_argument(
        "--anomaly-labels",
        type=Path,
        metavar="DIR",
        help="anomaly truth PNG files (0, 1, 255) matched to frames by order (sorted relative "
        "paths)",
    )
    parser.add_argument("--out", type=Path, help="report folder (default: <bag name>_eval)")
    parser.add_argument(
        "--write-bag",
        type=Path,
        metavar="OUT_BAG",
        help="also write the frames and <camera>/segmentation/{mask,confidence,overlay,anomaly,"
        "info} into this new bag (storage: its .mcap / .db3 suffix, else the input's)",
    )
    add_options(
        parser,
        OutputSettings,
        ("confidence_threshold", "confidence_encoding", "anomaly_method", "class_map"),
    )
    live = parser.add_argument_group(
        "live replay: play the bag into a vltseg_node process and score what it publishes"
    )
    live.add_argument(
        "--live",
        action="store_true",
        help="run the node (use_sim_time, Fast DDS large-data profile) on the bag in real time "
        "and report the frames it dropped too; labels come from the bag's label topic",
    )
    live.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    live.add_argument(
        "--lockstep",
        action="store_true",
        help="publish each frame after the mask of the previous one (as fast as the node "
        "keeps up, nothing dropped for being late)",
    )
    live.add_argument(
        "--save-overlays", action="store_true", help="write every overlay to --out/overlays/"
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the bag, write the report, print its table; returns 0."""
    require_rosbags()
    from vltseg_ros.bag.evaluate import BagEvalOptions, check_inputs, evaluate_bag
    from vltseg_ros.bag.score_masks import score_mask_topic

    options = BagEvalOptions(
        image_topic=args.image_topic,
        label_topic=args.label_topic,
        labels_dir=args.labels,
        mask_topic=args.mask_topic,
        outputs=options_from(args, OutputSettings),
        write_bag=args.write_bag,
        anomaly_topic=args.anomaly_topic,
        anomaly_dir=args.anomaly_labels,
    )
    options.validate()
    if args.live:
        return _run_live(args)
    if args.mask_topic:
        report = score_mask_topic(args.bag, options, progress=_progress)
    else:  # check the bag and folders before loading the model (big models take a while)
        check_inputs(args.bag, options)
        segmenter = load_segmenter(args)
        report = evaluate_bag(
            args.bag,
            segmenter,
            options,
            checkpoint=segmenter.checkpoint,
            progress=_progress,
        )
    out = args.out or default_out_dir(args.bag)
    paths = write_report(report, out)
    print(markdown_table(report))
    if not args.mask_topic:
        print("latency = engine time per frame (batch time / frames in it), decoding excluded")
    if args.write_bag:
        print(f"segmented bag: {args.write_bag}")
    print(f"report: {paths['markdown'].parent}")
    return 0


def _run_live(args: argparse.Namespace) -> int:
    """``--live``: the bag played through a vltseg_node process (needs rclpy + messages)."""
    if args.mask_topic or args.labels or args.anomaly_topic or args.anomaly_labels:
        print(
            "vltseg bag-eval: error: --live scores the node's masks against the bag's label "
            "topic; it cannot be combined with --mask-topic, --labels, --anomaly-topic or "
            "--anomaly-labels",
            file=sys.stderr,
        )
        return 2
    if args.class_map:
        print(
            "vltseg bag-eval: error: --live does not map the bag's labels with --class-map yet: "
            "score a --write-bag run's masks with --mask-topic --class-map instead",
            file=sys.stderr,
        )
        return 2
    from vltseg_ros.ros.replay.live import run_live_replay

    settings = options_from(args, SegmenterSettings)
    settings.check()
    if not settings.weights:
        warn_random_weights(settings.model or DEFAULT_MODEL)
    out = args.out or default_out_dir(args.bag)
    report = run_live_replay(
        args.bag,
        out,
        node_overrides(settings, options_from(args, OutputSettings)),
        rate=args.rate,
        lockstep=args.lockstep,
        output_bag=args.write_bag,
        save_overlays=args.save_overlays,
    )
    print(markdown_table(report))
    print("latency = engine time per frame (the node's inference_latency)")
    print(f"frames the node dropped: {report.dropped_frames}")
    print(f"report, node.log{', overlays' if args.save_overlays else ''}: {out}")
    if args.write_bag:
        print(f"segmented bag: {args.write_bag}")
    return 0


def node_overrides(settings: SegmenterSettings, outputs: OutputSettings) -> dict[str, object]:
    """vltseg_node parameters equal to the command's model, inference and output options."""
    return {**values_of(settings), **values_of(outputs)}


def default_out_dir(bag: Path) -> Path:
    """``<bag name>_eval`` next to the bag (``/data/run1`` or ``/data/run1.mcap`` ->
    ``/data/run1_eval``)."""
    bag = Path(bag)
    name = bag.stem if bag.is_file() else bag.name
    return bag.parent / f"{name}_eval"


def _progress(items: Iterable, total: int) -> Iterator:
    """A progress bar of ``total`` frames whose total becomes the frames read, should the bag
    end sooner (it never shows 12/999999 at the end)."""
    with tqdm(total=total, unit="frame") as bar:
        for item in items:
            yield item
            bar.update()
        if bar.n != bar.total:
            bar.total = bar.n
            bar.refresh()
