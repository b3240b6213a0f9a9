"""``vltseg make-scenes``: write generated street scenes as a Cityscapes-layout data set.

The data set the demo model (``vltseg_ros.demo_model``) is trained and evaluated on:
``vltseg train`` and ``vltseg evaluate`` read it as ``cityscapes:OUT``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from vltseg_ros.data.scenes_dataset import (
    HELD_OUT_SEED,
    UNSEEN_OBJECT_SETS,
    VOID_OBJECT_STYLES,
    write_scenes,
)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``make-scenes`` subcommand."""
    parser = subparsers.add_parser(
        "make-scenes",
        help="write generated street scenes with exact labels as a Cityscapes-layout data set",
        description="Write N synthetic street scenes (flat colored road, sidewalk, buildings, "
        "vegetation, sky, cars, poles and traffic signs) with exact Cityscapes train-id "
        "labels under OUT/leftImg8bit/SPLIT/scenes and OUT/gtFine/SPLIT/scenes, readable as "
        "the data set cityscapes:OUT. Scene i uses seed SEED + i: the demo model was trained "
        f"on seeds [0, N); evaluate on a disjoint range, e.g. --seed {HELD_OUT_SEED}.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="data set root to write")
    parser.add_argument(
        "--count", type=_positive, required=True, metavar="N", help="number of scenes"
    )
    parser.add_argument(
        "--seed", type=_non_negative, default=0, help="seed of the first scene (default 0)"
    )
    parser.add_argument(
        "--size",
        type=_size,
        default=(512, 1024),
        metavar="WxH",
        help="scene size in pixels, width x height (default 1024x512)",
    )
    parser.add_argument("--split", default="train", help="Cityscapes split folder (default train)")
    parser.add_argument(
        "--unseen-objects",
        choices=UNSEEN_OBJECT_SETS,
        default="none",
        help="paste objects of no class into every scene (labelled ignore) and write the "
        "scenes as the anomaly set road_anomaly21:OUT too (OUT/images, OUT/labels_masks): "
        "animals (striped, colors far from every class, on the road), one hard scenario "
        "(textured, near_class, small, off_road, crowded) or hard (the five in turn, by seed); "
        "default none",
    )
    parser.add_argument(
        "--void-objects",
        choices=VOID_OBJECT_STYLES,
        default="flat",
        help="void objects (things of no class, labelled ignore) of every scene: flat boxes "
        "and ellipses, or varied ones (boxes, ellipses, polygons; flat, gradient, checker or "
        "hatched; colors near the classes' too): the demo model's training scenes; default flat",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the scenes; returns 0 (errors raise VLTSegError / OSError: exit code 2)."""
    root = write_scenes(
        args.out,
        args.count,
        seed=args.seed,
        size=args.size,
        split=args.split,
        unseen_objects=args.unseen_objects,
        void_objects=args.void_objects,
    )
    height, width = args.size
    print(
        f"wrote {args.count} scenes of {width}x{height} (seeds {args.seed}-"
        f"{args.seed + args.count - 1}) to {root}: use it as cityscapes:{root} "
        f"(split {args.split})"
    )
    if args.unseen_objects != "none":
        print(f"with {args.unseen_objects} unseen objects: anomaly set road_anomaly21:{root}")
    return 0


def _size(text: str) -> tuple[int, int]:
    """``WxH`` -> (H, W); both at least 32."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1024x512")
    width, height = int(match[1]), int(match[2])
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be at least 32")
    return height, width


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
