"""``vltseg evaluate``: score a checkpoint on labeled data sets, per domain (ACDC per condition),
and on anomaly data sets.

Per domain: per-class IoU, mIoU and pixel accuracy as cityscapesscripts computes them, and the
expected calibration error (15 bins) with its reliability diagram, with the checkpoint's own
inference settings (sliding window), predictions at the label files' resolution. Per anomaly
set: AUROC, average precision and FPR at 95 % TPR of the chosen anomaly score and of max
probability.

Under torchrun every process segments every ``world_size``-th frame of each data set and
anomaly set, and rank 0 adds up the counts (:mod:`vltseg_ros.evaluation.sharding`), writes the
reports and prints the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vltseg_ros.cli.common import (
    add_model_arguments,
    add_options,
    join_processes,
    load_segmenter,
    options_from,
)
from vltseg_ros.config.class_map import BoundClassMap, read_class_map
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
from vltseg_ros.evaluation.anomaly_eval import log_anomaly, score_anomaly_set
from vltseg_ros.evaluation.dataset_eval import (
    domain_reports,
    frame_counts,
    log_scores,
)
from vltseg_ros.evaluation.report import AnomalyReport, EvaluationReport
from vltseg_ros.evaluation.sharding import gather_anomaly, gather_scores, score_share
from vltseg_ros.evaluation.summary_report import summary_markdown, write_evaluation
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.parallel.distributed import DistributedContext, shard, shutdown_distributed


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
        "classes: IoU and mIoU are per output class. Under torchrun the processes share the "
        "frames and rank 0 writes the reports.",
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
    """Evaluate every data set and anomaly set, write the reports and the summary, print it
    (under torchrun: this process's share; rank 0 writes and prints); returns 0."""
    if not args.dataset and not args.anomaly:
        raise ConfigError(
            "nothing to evaluate: give --dataset NAME:ROOT and/or --anomaly NAME:ROOT "
            f"(anomaly sets: {', '.join(ANOMALY_DATASET_NAMES)})"
        )
    datasets = open_datasets(args.dataset or [], args.split, args.conditions)
    anomaly_sets = open_anomaly_sets(args.anomaly or [], args.limit)
    outputs = options_from(args, OutputSettings)
    class_map = read_class_map(outputs.class_map) if outputs.class_map else None
    context = join_processes(args)
    try:
        # after the data checks: big models take a while
        segmenter = load_segmenter(args, warn=context.is_main)
        try:
            bound = class_map and class_map.bind(segmenter.class_set, outputs.class_map)
            reports = _domain_reports(args, segmenter, datasets, bound, context)
            anomaly = _anomaly_reports(segmenter, anomaly_sets, outputs, context)
        finally:
            segmenter.close()
    finally:
        shutdown_distributed()
    if not context.is_main:
        return 0
    out = args.out or default_out_dir(args.checkpoint, segmenter.config.name)
    write_evaluation(reports, out, anomaly)
    print(summary_markdown(reports, anomaly))
    folders = ", one folder per domain" if reports else ""
    folders += ", anomaly/<set>/" if anomaly else ""
    print(f"reports: {out} (summary.md, summary.json{folders})")
    return 0


def _provenance(segmenter: Segmenter, context: DistributedContext) -> dict[str, Any]:
    """The model, checkpoint and process count every report records."""
    return {
        "model": segmenter.config.name,
        "checkpoint": segmenter.checkpoint,
        "processes": context.world_size,
    }


def _domain_reports(
    args: argparse.Namespace,
    segmenter: Segmenter,
    datasets: dict[str, SegmentationDataset],
    class_map: BoundClassMap | None,
    context: DistributedContext,
) -> dict[str, EvaluationReport]:
    """Every data set's domain reports: this process's share scored, all shares added up on
    rank 0 ({} on the other ranks)."""
    classes = segmenter.class_set if class_map is None else class_map.classes
    reports: dict[str, EvaluationReport] = {}
    for spec, dataset in datasets.items():
        local = score_share(segmenter, dataset, context, limit=args.limit, class_map=class_map)
        scores = gather_scores(local)
        if scores is None:
            continue
        if context.is_distributed:
            log_scores(scores)
        reports |= domain_reports(
            scores.matrices,
            frame_counts(dataset, args.limit),
            classes.names,
            source=f"{spec}, {args.split} split",
            calibration=scores.calibration_results(),
            class_map="" if class_map is None else class_map.describe(),
            **_provenance(segmenter, context),
        )
    return reports


def _anomaly_reports(
    segmenter: Segmenter,
    anomaly_sets: dict[str, list[AnomalySample]],
    outputs: OutputSettings,
    context: DistributedContext,
) -> dict[str, AnomalyReport]:
    """Every anomaly set's report: this process's share scored, all shares pooled on rank 0 (the
    other ranks: {})."""
    reports: dict[str, AnomalyReport] = {}
    for spec, samples in anomaly_sets.items():
        mine = shard(samples, context)
        local = score_anomaly_set(
            segmenter, mine, outputs.anomaly_method, progress=context.is_main, seed=context.rank
        )
        scoring = gather_anomaly(local)
        if scoring is None:
            continue
        report = scoring.report(source=spec, **_provenance(segmenter, context))
        log_anomaly(report)
        reports[samples[0].dataset] = report
    return reports


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
