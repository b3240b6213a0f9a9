"""``vltseg make-bag``: write a rosbag2 of camera frames and labels from files or synthetic scenes.

The bag modules (and ``rosbags``) are imported when the command runs, so ``vltseg`` and the ML
core work on machines without them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tqdm import tqdm

from vltseg_ros.bag import require_rosbags
from vltseg_ros.data.frame_files import unique_stems
from vltseg_ros.errors import BagError, ConfigError

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-bag`` subcommand."""
    parser = subparsers.add_parser(
        "make-bag",
        help="write a rosbag2 of frames (+ labels) from image files or synthetic scenes",
        description="Write a rosbag2 with every image of IMAGES_DIR (recursively, sorted by "
        "relative path) as sensor_msgs/Image rgb8 (or CompressedImage JPEG with "
        "--compressed), its label (Cityscapes *_gtFine_labelTrainIds / _labelIds, ACDC "
        "*_gt_labelTrainIds / _labelIds, or <stem>.png in --labels / <stem>_labels.png) as "
        "mono8 train ids with the same header stamp, and a CameraInfo, 1/rate s apart. "
        "With --synthetic N, IMAGES_DIR is '-' and N generated street scenes with exact "
        "labels are written. Each frame's name (its file stem, or the scene's name) is "
        "stored in the bag's metadata.yaml (custom_data vltseg_ros.frame_names); a live "
        "replay names its overlays after them. An interrupted run (Ctrl-C, SIGTERM) or a "
        "write error leaves no bag at OUT_BAG.",
    )
    parser.add_argument("images_dir", metavar="IMAGES_DIR", help="image folder, or '-'")
    parser.add_argument("out_bag", type=Path, metavar="OUT_BAG", help="bag directory to create")
    parser.add_argument("--labels", type=Path, metavar="LABELS_DIR", help="label folder")
    parser.add_argument("--topic", default="/camera/image_raw", help="raw image topic")
    parser.add_argument("--label-topic", default="/camera/labels", help="label topic")
    parser.add_argument("--frame-id", default="camera", help="header frame_id")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
    parser.add_argument(
        "--compressed",
        action="store_true",
        help="write JPEG sensor_msgs/CompressedImage on <topic>/compressed",
    )
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument(
        "--synthetic", type=int, metavar="N", help="write N generated scenes (IMAGES_DIR '-')"
    )
    parser.add_argument(
        "--synthetic-size",
        type=int,
        nargs=2,
        default=(512, 1024),
        metavar=("H", "W"),
        help="size of the synthetic scenes (default 512 1024)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the bag; returns 0 (errors raise VLTSegError: exit code 2)."""
    require_rosbags()
    from vltseg_ros.bag.frames import check_sizes, find_frames
    from vltseg_ros.bag.make_bag import (
        BagLayout,
        folder_frames,
        synthetic_frames,
        synthetic_names,
        write_frames_bag,
    )

    if args.out_bag.exists():
        raise BagError(f"{args.out_bag} already exists; bags are never overwritten")
    layout = BagLayout(
        topic=args.topic,
        label_topic=args.label_topic,
        frame_id=args.frame_id,
        rate=args.rate,
        compressed=args.compressed,
        storage=args.storage,
    )
    layout.validate()
    if args.synthetic is not None:
        if args.images_dir != "-" or args.labels is not None:
            raise ConfigError("with --synthetic N give '-' as IMAGES_DIR and no --labels")
        height, width = args.synthetic_size
        frames, total = synthetic_frames(args.synthetic, height, width), args.synthetic
        names = synthetic_names(total)
    else:
        if args.images_dir == "-":
            raise ConfigError("IMAGES_DIR '-' needs --synthetic N")
        pairs = find_frames(Path(args.images_dir), args.labels)
        check_sizes(pairs)
        labelled = sum(pair.label is not None for pair in pairs)
        LOG.info("%d image(s) found, %d with a label", len(pairs), labelled)
        frames, total = folder_frames(pairs), len(pairs)
        names = unique_stems([pair.image for pair in pairs])
    progress = tqdm(frames, total=total, unit="frame")
    counts = write_frames_bag(args.out_bag, progress, layout, names)
    summary = ", ".join(f"{topic}: {count}" for topic, count in counts.items())
    print(f"wrote {args.out_bag} ({args.storage}): {summary}")
    return 0
