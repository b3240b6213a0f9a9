"""``vltseg evaluate``: score a checkpoint on labeled data sets, per domain (ACDC per condition),
and on anomaly data sets.

Per domain: per-class IoU, mIoU and pixel accuracy as cityscapesscripts computes them, and the
expected calibration error (15 bins) with its reliability diagram, with the checkpoint's own
inference settings (sliding window), predictions at the label files' resolution. Per anomaly
set: AUROC, average precision and FPR at 95 % TPR of the chosen anomaly score and of max
probability.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vltseg_ros.cli.common import add_model_arguments, add_options, load_segmenter, options_from
from vltseg_ros.config.class_map import read_class_map
from vltseg_ros.config.model_config import DEFAULT_MODEL
from vltseg_ros.data import DATASET_NAMES, SegmentationDataset, build_dataset, parse_dataset_spec
from vltseg_ros.data.anomaly_sets import (
    ANOMALY_DATASET_NAMES,
    AnomalySample,
    anomaly_samples,
    parse_anomaly_spec,
)
from vltseg_ros.data.cityscapes import ACDC_CONDITIONS
from vltseg_ros.errors import ConfigError
from vltseg_ros.evaluation.anomaly_eval import evaluate_anomaly_set
from vltseg_ros.evaluation.dataset_eval import (
    domain_reports,
    frame_counts,
    score_dataset,
    summary_markdown,
    write_evaluation,
)
from vltseg_ros.evaluation.report import AnomalyReport, EvaluationReport
from vltseg_ros.inference.outputs import OutputSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score a checkpoint on data sets: per-class IoU, mIoU, pixel accuracy, ECE per "
        "domain; AUROC, AP, FPR95 per anomaly set",
        description="Segment every labeled frame of each --dataset split with the "
        "checkpoint's inference settings and score it at the label's resolution as "
        "cityscapesscripts does, with the expected calibration error (15 bins) of its "
        "winning-class probability. Writes <domain>/report.md, report.json, iou.png, "
        "confusion.png and reliability.png per domain (ACDC: acdc/<condition> and acdc over all "
        "conditions). Each --anomaly set is segmented too and its per-pixel anomaly score "
        "(--anomaly-method) and max probability are scored against its anomaly labels (AUROC, "
        "average precision, FPR at 95 % TPR) into anomaly/<set>/report.md and report.json. "
        "Writes summary.md and summary.json into --out, and prints the summary. With "
        "--class-map, labels are mapped with the map and predictions made in its output "
        "classes: IoU and mIoU are per output class.",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        metavar="NAME:ROOT",
        help=f"a data set in its downloaded layout (NAME: {', '.join(DATASET_NAMES)}), e.g. "
        "acdc:/data/acdc; repeat for several (at least one --dataset or --anomaly)",
    )
    parser.add_argument(
        "--anomaly",
        action="append",
        metavar="NAME:ROOT",
        help=f"an anomaly data set in its downloaded layout (NAME: "
        f"{', '.join(ANOMALY_DATASET_NAMES)}), e.g. road_anomaly:/data/RoadAnomaly_jpg; repeat "
        "for several",
    )
    add_options(parser, OutputSettings, ("anomaly_method", "class_map"))
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    parser.add_argument(
        "--conditions",
        nargs="+",
        metavar="C",
        help=f"ACDC conditions to evaluate (default all: {' '.join(ACDC_CONDITIONS)})",
    )
    parser.add_argument("--out", type=Path, help="report folder (default eval_<checkpoint stem>)")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N frames of each domain and of each anomaly set",
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate every data set and anomaly set, write the reports and the summary, print it;
    returns 0."""
    if not args.dataset and not args.anomaly:
        raise ConfigError(
            "nothing to evaluate: give --dataset NAME:ROOT and/or --anomaly NAME:ROOT "
            f"(anomaly sets: {', '.join(ANOMALY_DATASET_NAMES)})"
        )
    datasets = open_datasets(args.dataset or [], args.split, args.conditions)
    frames = {spec: frame_counts(dataset, args.limit) for spec, dataset in datasets.items()}
    anomaly_sets = open_anomaly_sets(args.anomaly or [], args.limit)
    outputs = options_from(args, OutputSettings)
    class_map = read_class_map(outputs.class_map) if outputs.class_map else None
    segmenter = load_segmenter(args)  # after the data checks: big models take a while
    checkpoint = segmenter.checkpoint
    reports: dict[str, EvaluationReport] = {}
    anomaly: dict[str, AnomalyReport] = {}
    try:
        bound = class_map and class_map.bind(segmenter.class_set, outputs.class_map)
        classes = segmenter.class_set if bound is None else bound.classes
        for spec, dataset in datasets.items():
            scores = score_dataset(segmenter, dataset, limit=args.limit, class_map=bound)
            reports |= domain_reports(
                scores.matrices,
                frames[spec],
                classes.names,
                model=segmenter.config.name,
                checkpoint=checkpoint,
                source=f"{spec}, {args.split} split",
                calibration=scores.calibration_results(),
                class_map="" if bound is None else bound.describe(),
            )
        for spec, samples in anomaly_sets.items():
            name = samples[0].dataset
            anomaly[name] = evaluate_anomaly_set(
                segmenter, samples, outputs.anomaly_method, source=spec, checkpoint=checkpoint
            )
    finally:
        segmenter.close()
    out = args.out or default_out_dir(args.checkpoint, segmenter.config.name)
    write_evaluation(reports, out, anomaly)
    print(summary_markdown(reports, anomaly))
    folders = ", one folder per domain" if reports else ""
    folders += ", anomaly/<set>/" if anomaly else ""
    print(f"reports: {out} (summary.md, summary.json{folders})")
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


def open_anomaly_sets(
    specs: list[str], limit: int | None = None
) -> dict[str, list[AnomalySample]]:
    """``NAME:ROOT`` spec -> the set's labelled samples (the first ``limit`` of them).

    Raises:
        DatasetError: a bad spec, unknown name, missing root or layout problem.
        ConfigError: a set given twice, or ``limit`` < 1.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 frame per domain, got {limit}")
    parsed = [parse_anomaly_spec(spec) for spec in specs]
    names = [name for name, _ in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"anomaly set(s) {', '.join(repeated)} given twice: give each once")
    return {f"{name}:{root}": anomaly_samples(name, root)[:limit] for name, root in parsed}


def default_out_dir(checkpoint: str | Path | None, model: str = DEFAULT_MODEL) -> Path:
    """``eval_<checkpoint stem>`` in the working folder (``eval_<model>_random`` without a
    checkpoint)."""
    if checkpoint:
        return Path(f"eval_{Path(checkpoint).stem}")
    return Path(f"eval_{Path(model).stem}_random")
