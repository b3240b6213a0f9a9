"""``vltseg bag-eval``: segment rosbag2s' frames offline and score them against their labels.

One bag gives one report; several bags (or a folder of bags) one report per bag plus their
total (:mod:`vltseg_ros.bag.fleet`). Under torchrun the processes share the bags (or, with
fewer bags than processes, the frames) and rank 0 writes the reports.

The bag modules (and ``rosbags``) are imported when the command runs, so ``vltseg`` and the ML
core work on machines without them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from vltseg_ros.bag import require_rosbags
from vltseg_ros.cli.common import (
    add_model_arguments,
    add_options,
    join_processes,
    load_segmenter,
    options_from,
    warn_random_weights,
)
from vltseg_ros.config.model_config import DEFAULT_MODEL
from vltseg_ros.config.options import values_of
from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.fleet_report import fleet_markdown, write_fleet_report
from vltseg_ros.evaluation.report import markdown_table, write_report
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.parallel.distributed import (
    DistributedContext,
    launched_world_size,
    shutdown_distributed,
)

if TYPE_CHECKING:  # the bag modules need rosbags: imported when the command runs
    from vltseg_ros.bag.evaluate import BagEvalOptions
    from vltseg_ros.bag.fleet import FleetReports


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
        "output classes: IoU and mIoU are per output class. Several bags (or a folder of "
        "bags) are reported per bag and in total. Under torchrun the processes share the "
        "bags (fewer bags than processes: the frames) and rank 0 writes the report.",
    )
    parser.add_argument(
        "bags",
        type=Path,
        nargs="+",
        metavar="BAG",
        help="rosbag2 directory or file, or a folder of them; several: a report per bag and "
        "their total",
    )
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
    parser.add_argument(
        "--out",
        type=Path,
        help="report folder (default: <bag or folder name>_eval next to it; several paths: "
        "bags_eval)",
    )
    parser.add_argument(
        "--write-bag",
        type=Path,
        metavar="OUT_BAG",
        help="also write the frames and <camera>/segmentation/{mask,confidence,overlay,anomaly,"
        "info} into this new bag (storage: its .mcap / .db3 suffix, else the input's); with "
        "several bags a folder receiving one bag per input bag, named after it",
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
    """Evaluate the bag(s), write the report(s), print the table; returns 0 (under torchrun:
    this process's share; rank 0 writes and prints)."""
    require_rosbags()
    from vltseg_ros.bag.evaluate import BagEvalOptions
    from vltseg_ros.bag.fleet import find_bags, is_bag
    from vltseg_ros.bag.score_masks import score_mask_topic

    single = len(args.bags) == 1 and (is_bag(args.bags[0]) or not args.bags[0].is_dir())
    options = BagEvalOptions(
        image_topic=args.image_topic,
        label_topic=args.label_topic,
        labels_dir=args.labels,
        mask_topic=args.mask_topic,
        outputs=options_from(args, OutputSettings),
        write_bag=args.write_bag if single else None,  # several: one per bag, in the folder
        anomaly_topic=args.anomaly_topic,
        anomaly_dir=args.anomaly_labels,
    )
    options.validate()
    if args.live or args.mask_topic:
        bag = _one_bag(args, single)
        if args.live:
            return _run_live(args, bag)
        report = score_mask_topic(bag, options, progress=_progress)
    else:
        bags = find_bags(args.bags)  # a clear error for a bad path before the model loads
        context = join_processes(args)
        try:
            reports = _evaluate(args, bags, single, options, context)
        finally:
            shutdown_distributed()
        if reports is None:
            return 0
        if not single:
            return _write_fleet(args, reports)
        report = reports.total
    out = args.out or default_out_dir(args.bags[0])
    paths = write_report(report, out)
    print(markdown_table(report))
    if not args.mask_topic:
        print(LATENCY_NOTE)
    if args.write_bag:
        print(f"segmented bag: {args.write_bag}")
    print(f"report: {paths['markdown'].parent}")
    return 0


LATENCY_NOTE = "latency = engine time per frame (batch time / frames in it), decoding excluded"


def _one_bag(args: argparse.Namespace, single: bool) -> Path:
    """The one bag ``--live`` and ``--mask-topic`` take (``single``: one path, not a folder
    of bags), in a single process."""
    what = "--live" if args.live else "--mask-topic"
    if not single:
        given = f"{len(args.bags)} paths" if len(args.bags) > 1 else f"the folder {args.bags[0]}"
        raise ConfigError(f"{what} takes one bag, got {given}: run it once per bag")
    if launched_world_size() > 1:
        raise ConfigError(f"{what} runs in one process: start it without torchrun")
    return args.bags[0]


def _evaluate(
    args: argparse.Namespace,
    bags: Sequence[Path],
    single: bool,
    options: BagEvalOptions,
    context: DistributedContext,
) -> FleetReports | None:
    """This process's shares of ``bags`` segmented; on rank 0 the :class:`FleetReports`."""
    from vltseg_ros.bag.evaluate import check_inputs
    from vltseg_ros.bag.fleet import evaluate_fleet, splits_bags, written_bag

    if len(bags) > 1 and (args.labels or args.anomaly_labels):
        raise ConfigError(
            "--labels and --anomaly-labels match one bag's frames by order: give one bag, or "
            "bags with label topics"
        )
    if args.write_bag and splits_bags(len(bags), context):
        raise ConfigError(
            f"--write-bag needs whole bags, but {context.world_size} processes split the "
            f"frames of {len(bags)} bag(s): give at least as many bags as processes, or run "
            "without torchrun"
        )
    per_bag = [options] * len(bags)
    if args.write_bag and not single:
        outputs = [written_bag(args.write_bag, bag) for bag in bags]
        per_bag = [dataclasses.replace(options, write_bag=out) for out in outputs]
    for bag, bag_options in zip(bags, per_bag, strict=True):
        check_inputs(bag, bag_options)  # every bag checked before the model loads
    if args.write_bag and not single:
        args.write_bag.mkdir(parents=True, exist_ok=True)
    segmenter = load_segmenter(args, warn=context.is_main)
    try:
        return evaluate_fleet(
            bags,
            segmenter,
            per_bag,
            context,
            checkpoint=segmenter.checkpoint,
            progress=_progress if context.is_main else None,
        )
    finally:
        segmenter.close()


def _write_fleet(args: argparse.Namespace, reports: FleetReports) -> int:
    """Write and print the report of several bags; returns 0."""
    out = args.out or (default_out_dir(args.bags[0]) if len(args.bags) == 1 else BAGS_OUT)
    paths = write_fleet_report(reports.bags, reports.total, out)
    print(fleet_markdown(reports.bags, reports.total, sections=False))
    print(LATENCY_NOTE)
    if args.write_bag:
        print(f"segmented bags: {args.write_bag}")
    print(f"report: {paths['markdown'].parent} (one folder per bag)")
    return 0


BAGS_OUT = Path("bags_eval")
"""The default report folder of several bag paths (in the working folder)."""


def _run_live(args: argparse.Namespace, bag: Path) -> int:
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
    out = args.out or default_out_dir(bag)
    report = run_live_replay(
        bag,
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
