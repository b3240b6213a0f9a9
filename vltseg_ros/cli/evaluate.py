"""``vltseg evaluate``: score a checkpoint on labeled data sets, per domain (ACDC per condition).

Per domain: per-class IoU, mIoU and pixel accuracy as cityscapesscripts computes them, with the
checkpoint's own inference settings (sliding window), predictions at the label files'
resolution.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vltseg_ros.cli.common import add_model_arguments, load_segmenter
from vltseg_ros.config import DEFAULT_MODEL
from vltseg_ros.data import DATASET_NAMES, SegmentationDataset, build_dataset, parse_dataset_spec
from vltseg_ros.data.cityscapes import ACDC_CONDITIONS
from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.dataset_eval import (
    domain_reports,
    evaluate_dataset,
    frame_counts,
    summary_markdown,
    write_evaluation,
)
from vltseg_ros.evaluation.report import EvaluationReport


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on data sets: per-class IoU, mIoU, pixel accuracy per domain",
        description="Segment every labeled frame of each --dataset split with the "
        "checkpoint's inference settings and score it at the label's resolution as "
        "cityscapesscripts does. Writes <domain>/report.md, report.json, iou.png and "
        "confusion.png per domain (ACDC: acdc/<condition> and acdc over all conditions) plus "
        "summary.md and summary.json into --out, and prints the summary.",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="NAME:ROOT",
        help=f"a data set in its downloaded layout (NAME: {', '.join(DATASET_NAMES)}), e.g. "
        "acdc:/data/acdc; repeat for several",
    )
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    parser.add_argument(
        "--conditions",
        nargs="+",
        metavar="C",
        help=f"ACDC conditions to evaluate (default all: {' '.join(ACDC_CONDITIONS)})",
    )
    parser.add_argument("--out", type=Path, help="report folder (default eval_<checkpoint stem>)")
    parser.add_argument(
        "--limit", type=int, metavar="N", help="only the first N frames of each domain"
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate every data set, write the reports and the summary, print it; returns 0."""
    datasets = open_datasets(args.dataset, args.split, args.conditions)
    frames = {spec: frame_counts(dataset, args.limit) for spec, dataset in datasets.items()}
    segmenter = load_segmenter(args)  # after the data checks: big models take a while
    checkpoint = str(args.checkpoint or "")
    reports: dict[str, EvaluationReport] = {}
    try:
        for spec, dataset in datasets.items():
            matrices = evaluate_dataset(segmenter, dataset, limit=args.limit)
            reports |= domain_reports(
                matrices,
                frames[spec],
                segmenter.class_set.names,
                model=segmenter.config.name,
                checkpoint=checkpoint,
                source=f"{spec}, {args.split} split",
            )
    finally:
        segmenter.close()
    out = args.out or default_out_dir(args.checkpoint, segmenter.config.name)
    write_evaluation(reports, out)
    print(summary_markdown(reports))
    print(f"reports: {out} (summary.md, summary.json, one folder per domain)")
    return 0


def open_datasets(
    specs: list[str], split: str, conditions: list[str] | None
) -> dict[str, SegmentationDataset]:
    """``NAME:ROOT`` spec -> its data set's ``split``; ``conditions`` go to ACDC.

    Raises:
        DatasetError: a bad spec, unknown name or condition, missing root, layout problem or
            empty split.
        ConfigError: a data set given twice, or conditions without an ACDC data set.
    """
    parsed = [parse_dataset_spec(spec) for spec in specs]
    names = [name for name, _ in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"data set(s) {', '.join(repeated)} given twice: give each once")
    if conditions and "acdc" not in names:
        raise ConfigError("--conditions selects ACDC conditions; add --dataset acdc:ROOT")
    return {
        f"{name}:{root}": build_dataset(
            name, root, split, conditions=conditions if name == "acdc" else None
        )
        for name, root in parsed
    }


def default_out_dir(checkpoint: str | Path | None, model: str = DEFAULT_MODEL) -> Path:
    """``eval_<checkpoint stem>`` in the working folder (``eval_<model>_random`` without a
    checkpoint)."""
    if checkpoint:
        return Path(f"eval_{Path(checkpoint).stem}")
    return Path(f"eval_{Path(model).stem}_random")
