"""Offline evaluation of a rosbag2: segment its frames with a model and score them.

Labels come from a label topic (matched to images by header stamp) or from a labels folder
(matched by order: the k-th image message of the bag gets the k-th label file in sorted
relative-path order, the order ``vltseg make-bag`` writes frames in). Frames without a label
are segmented (and timed) but not scored. A scored frame also counts towards the expected
calibration error (15 bins) of its winning-class probability.

Anomaly truth (mono8: 0 in-distribution, 1 anomaly, 255 void) comes the same two ways: an
anomaly topic matched by header stamp, or an anomaly labels folder of PNG files matched by
order. Frames with anomaly truth are scored with AUROC, average precision and FPR at 95 % TPR,
for the outputs' ``anomaly_method`` and for max probability (``1 - confidence``).

With a class map (the outputs' ``class_map``), frames are segmented into its output classes and
labels mapped with its lookup table before scoring; the written bag's masks, confidence,
overlays, info and label_info are in the output classes, its labels stay as they were.

Scoring masks already in a bag, without a model (``mask_topic``), is
:mod:`vltseg_ros.bag.score_masks`; it shares the options and the label helpers here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vltseg_ros.bag.frame_names import read_frame_names
from vltseg_ros.bag.frames import FramePair, anomaly_label_files, label_files, read_label
from vltseg_ros.bag.reading import BagFrame, iter_frames, storage_of
from vltseg_ros.bag.result_writer import SegmentationBagWriter
from vltseg_ros.bag.topics import BagTopics, find_topics
from vltseg_ros.bag.writing import Storage
from vltseg_ros.config.class_map import BoundClassMap, read_class_map
from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.errors import BagError, ConfigError
from vltseg_ros.evaluation.anomaly_eval import AnomalyScoring
from vltseg_ros.evaluation.calibration import CalibrationAccumulator
from vltseg_ros.evaluation.dataset_eval import add_calibration, calibration_result
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import EvaluationReport
from vltseg_ros.inference.outputs import OutputSettings
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.result import SegmentationResult

LOG = logging.getLogger(__name__)
_TRUTH_VALUES = np.array([0, 1, 255], np.uint8)
Progress = Callable[[Iterable, int], Iterable]
"""Wraps an iterable of frames (with its expected length), e.g. in a tqdm progress bar."""


@dataclass(frozen=True)
class BagEvalOptions:
    """What to read, how to segment and what to write.

    Attributes:
        image_topic: camera topic; None: the bag's only image topic.
        label_topic: label topic; None: the bag's only "label" topic, if any.
        labels_dir: labels folder matched to frames by order (instead of a label topic).
        mask_topic: score the masks (mono8) of this topic instead of running a model.
        outputs: the confidence threshold (a pixel below it is unlabeled, 255: a miss), how
            scores reach the frame's size, the anomaly score scored against anomaly truth,
            the class map (output classes scored and written), and what the written bag holds
            (masks are always scored at the frame's resolution).
        write_bag: write the frames and segmentation outputs into this new bag.
        anomaly_topic: mono8 anomaly truth topic (0 in-distribution, 1 anomaly, 255 void).
        anomaly_dir: anomaly truth PNG files matched to frames by order (instead of a topic).
    """

    image_topic: str | None = None
    label_topic: str | None = None
    labels_dir: Path | None = None
    mask_topic: str | None = None
    outputs: OutputSettings = field(default_factory=OutputSettings)
    write_bag: Path | None = None
    anomaly_topic: str | None = None
    anomaly_dir: Path | None = None

    @property
    def scores_anomaly(self) -> bool:
        """True when anomaly truth is given (a topic or a folder)."""
        return bool(self.anomaly_topic or self.anomaly_dir)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for conflicting options."""
        if self.label_topic and self.labels_dir:
            raise ConfigError("give a label topic or a labels folder, not both")
        if self.anomaly_topic and self.anomaly_dir:
            raise ConfigError("give an anomaly topic or an anomaly labels folder, not both")
        scored = self.mask_topic or self.image_topic
        if scored and self.label_topic and scored.rstrip("/") == self.label_topic.rstrip("/"):
            raise ConfigError(f"{scored} cannot be both the scored topic and the label topic")
        if self.mask_topic and self.write_bag:
            raise ConfigError("scoring masks from the bag writes no bag: drop write_bag")
        if self.mask_topic and self.scores_anomaly:
            raise ConfigError(
                "masks read from the bag (--mask-topic) have no anomaly scores: anomaly truth "
                "(--anomaly-topic, --anomaly-labels) needs the model run"
            )
        anomaly = (self.anomaly_topic or "").rstrip("/")
        if anomaly and anomaly in {(t or "").rstrip("/") for t in (scored, self.label_topic)}:
            raise ConfigError(
                f"{self.anomaly_topic} cannot be both the anomaly topic and the scored or label "
                "topic"
            )
        if self.write_bag is not None and Path(self.write_bag).exists():
            raise BagError(f"{self.write_bag} already exists; bags are never overwritten")


def output_storage(out: Path, source: Path) -> Storage:
    """Storage of a written bag: by its suffix (.mcap / .db3), else the source bag's."""
    suffix = Path(out).suffix.lower()
    if suffix in (".mcap", ".db3"):
        return "mcap" if suffix == ".mcap" else "sqlite3"
    return storage_of(source)


def check_inputs(bag: Path, options: BagEvalOptions) -> BagTopics:
    """The topics :func:`evaluate_bag` reads, with the options, the labels folder and the
    anomaly labels folder checked against the bag (callers check before loading a model).

    Raises:
        BagError: see :func:`find_topics`; a folder that is missing, empty, or whose file
            count differs from the image topic's message count.
        ConfigError: invalid options, or a missing or bad class map file.
    """
    options.validate()
    if options.outputs.class_map:
        read_class_map(options.outputs.class_map)
    topics = find_topics(
        bag, options.image_topic, label_option(options), anomaly_topic=options.anomaly_topic
    )
    folder_labels(options.labels_dir, topics)
    _folder_truths(options.anomaly_dir, topics)
    return topics


def evaluate_bag(
    bag: Path,
    segmenter: Segmenter,
    options: BagEvalOptions,
    *,
    checkpoint: str = "",
    progress: Progress | None = None,
) -> EvaluationReport:
    """Segment every frame of ``bag`` and score it against its label (and anomaly truth).

    Args:
        checkpoint: the weights file the segmenter was loaded from ("" = random weights),
            for the report and the written info messages.

    Returns:
        The report; ``latencies_ms`` holds the engine time per frame (batch time / frames in
        the batch) of every frame, ``frames`` the number of frames scored, ``calibration`` the
        ECE of their labelled pixels (None without one), ``anomaly`` the anomaly metrics
        (None without anomaly truth).

    Raises:
        BagError: bag, topic, label, anomaly truth or output problems (see
            :func:`find_topics`).
        ConfigError: invalid options.
        EvaluationError: the anomaly truth holds no anomaly or no in-distribution pixel.
    """
    topics = check_inputs(bag, options)
    frames = iter_frames(bag, topics.image_topic, topics.label_topic, topics.anomaly_topic)
    class_map = options.outputs.load_class_map(segmenter.class_set)
    class_set = segmenter.class_set if class_map is None else class_map.classes
    report = empty_report(
        class_set, class_map, source=str(bag), model=segmenter.config.name, checkpoint=checkpoint
    )
    scorer = _FrameScorer(report, options, topics, class_map)
    writer = _output_writer(bag, topics, options, segmenter.class_set, class_map, report)
    frames = with_progress(frames, topics.image_count, progress)
    stream = ((frame, frame.image, frame.color_order, None) for frame in frames)
    predict = {**options.outputs.predict_options(class_map), "output_size": None}
    if scorer.anomaly is not None:
        predict |= scorer.anomaly.predict_options()
    if writer is not None:  # the written bag has the anomaly topic too
        predict["return_anomaly"] = True
    try:
        for batch, results, seconds in segmenter.predict_stream(stream, **predict):
            for frame, result in zip(batch, results, strict=True):
                report.latencies_ms.append(1e3 * seconds / len(batch))
                label = scorer.score(frame, result)
                if writer is not None:
                    outside = label if frame.label_message is None else None
                    writer.write(frame, result, seconds, len(batch), outside)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    if writer is not None:
        writer.close()
    log_unscored(report, len(report.latencies_ms))
    return scorer.finish()


def empty_report(
    class_set: ClassSetConfig, class_map: BoundClassMap | None, **provenance: Any
) -> EvaluationReport:
    """An empty report over ``class_set`` (the class map's output classes when one is given)."""
    return EvaluationReport(
        class_set.names,
        ConfusionMatrix(class_set.num_classes, class_set.ignore_index),
        class_map="" if class_map is None else class_map.describe(),
        **provenance,
    )


class _FrameScorer:
    """Scores each segmented frame of :func:`evaluate_bag` into its report: the label
    (confusion matrix, calibration; mapped with the class map, if any) and the anomaly truth
    (:class:`AnomalyScoring`)."""

    def __init__(
        self,
        report: EvaluationReport,
        options: BagEvalOptions,
        topics: BagTopics,
        class_map: BoundClassMap | None,
    ) -> None:
        self.report = report
        self.class_map = class_map
        self.ignore_index = report.confusion.ignore_index
        self.labels = folder_labels(options.labels_dir, topics)
        self.truths = _folder_truths(options.anomaly_dir, topics)
        self.calibration = CalibrationAccumulator()
        method = options.outputs.anomaly_method
        self.anomaly = AnomalyScoring(method) if options.scores_anomaly else None
        self.where = options.anomaly_topic or options.anomaly_dir

    def score(self, frame: BagFrame, result: SegmentationResult) -> np.ndarray | None:
        """Score one frame; returns its label as read (None without one)."""
        label = frame.label if self.labels is None else _next_label(self.labels, frame)
        if label is not None:
            scored = score_frame(
                self.report.confusion, result.labels, label, frame.stamp_ns, self.class_map
            )
            add_calibration(self.calibration, result, scored, self.ignore_index)
            self.report.frames += 1
        if self.anomaly is not None:
            truth = frame.anomaly if self.truths is None else _next_truth(self.truths, frame)
            if truth is not None:
                self.anomaly.add(result, _checked_truth(truth, frame.stamp_ns))
        return label

    def finish(self) -> EvaluationReport:
        """The report with its calibration and anomaly metrics."""
        report = self.report
        report.calibration = calibration_result(self.calibration)
        if self.anomaly is not None:
            if self.anomaly.frames == 0:
                raise BagError(f"no frame of {report.source} has anomaly truth on {self.where}")
            report.anomaly = self.anomaly.report(
                source=f"{report.source} ({self.where})",
                model=report.model,
                checkpoint=report.checkpoint,
            )
        return report


def label_option(options: BagEvalOptions) -> str | None:
    """The label topic to look for: none when labels come from a folder."""
    return None if options.labels_dir else options.label_topic


def folder_labels(labels_dir: Path | None, topics: BagTopics) -> Iterator[FramePair] | None:
    """The label files of ``labels_dir`` to match to the frames by order (None without one);
    a :class:`BagError` for a missing or empty folder or a count other than the frames'."""
    if labels_dir is None:
        return None
    return _by_order(label_files(labels_dir), f"labels folder {labels_dir}", "labels", topics)


def _folder_truths(folder: Path | None, topics: BagTopics) -> Iterator[Path] | None:
    if folder is None:
        return None
    files = anomaly_label_files(folder)
    return _by_order(files, f"anomaly labels folder {folder}", "anomaly labels", topics)


def _by_order(files: list, where: str, what: str, topics: BagTopics) -> Iterator:
    """The files, to be matched to the image messages by order: as many as there are."""
    if len(files) != topics.image_count:
        raise BagError(
            f"{where} has {len(files)} files but topic {topics.image_topic} has "
            f"{topics.image_count} messages; {what} are matched to frames by order, so the "
            "counts must be equal"
        )
    return iter(files)


def _next_truth(truths: Iterator[Path], frame: BagFrame) -> np.ndarray:
    path = next(truths, None)
    if path is None:
        raise BagError("the bag has more frames than the anomaly labels folder has files")
    truth = read_label(path)
    shape = frame.image.shape[:2]
    if truth.shape != shape:
        raise BagError(
            f"anomaly label {path} is {truth.shape[1]}x{truth.shape[0]} (WxH) but the frame at "
            f"stamp {frame.stamp_ns} ns is {shape[1]}x{shape[0]}: anomaly labels must have the "
            "frame's size"
        )
    return truth


def _checked_truth(truth: np.ndarray, stamp: int) -> np.ndarray:
    """``truth`` if it holds only 0, 1 and 255; else a :class:`BagError`."""
    present = np.bincount(truth.ravel(), minlength=256) > 0
    present[_TRUTH_VALUES] = False
    other = np.flatnonzero(present)
    if other.size:
        raise BagError(
            f"anomaly truth at stamp {stamp} ns holds values {other.tolist()[:10]}; it must "
            "hold 0 (in-distribution), 1 (anomaly) or 255 (void) only"
        )
    return truth


def _next_label(labels: Iterator[FramePair], frame: BagFrame) -> np.ndarray:
    return read_folder_label(next(labels, None), frame.image.shape[:2], frame.stamp_ns)


def read_folder_label(pair: FramePair | None, shape: tuple[int, ...], stamp: int) -> np.ndarray:
    """The (H, W) uint8 train ids of ``pair``'s label file; a :class:`BagError` when no file
    is left (``pair`` None) or the label is not of the frame's (H, W) ``shape``."""
    if pair is None or pair.label is None:
        raise BagError("the bag has more frames than the labels folder has label files")
    label = read_label(pair.label, pair.label_ids)
    if label.shape != tuple(shape):
        raise BagError(
            f"label {pair.label} is {label.shape[1]}x{label.shape[0]} (WxH) but the frame at "
            f"stamp {stamp} ns is {shape[1]}x{shape[0]}: labels must have the frame's size"
        )
    return label


def score_frame(
    confusion: ConfusionMatrix,
    prediction: np.ndarray,
    label: np.ndarray,
    stamp: int,
    class_map: BoundClassMap | None = None,
) -> np.ndarray:
    """Add one frame to ``confusion``; returns the label as scored (mapped with
    ``class_map``, if any)."""
    if prediction.shape != label.shape:
        raise BagError(
            f"at stamp {stamp} ns the prediction is {prediction.shape[1]}x{prediction.shape[0]} "
            f"(WxH) but the label is {label.shape[1]}x{label.shape[0]}"
        )
    try:
        label = label if class_map is None else class_map.map_labels(label)
        confusion.update(prediction, label)
    except ValueError as exc:
        raise BagError(f"label at stamp {stamp} ns: {exc}") from exc
    return label


def _output_writer(
    bag: Path,
    topics: BagTopics,
    options: BagEvalOptions,
    model_classes: ClassSetConfig,
    class_map: BoundClassMap | None,
    report: EvaluationReport,
) -> SegmentationBagWriter | None:
    if options.write_bag is None:
        return None
    return SegmentationBagWriter(
        Path(options.write_bag),
        output_storage(Path(options.write_bag), bag),
        image_topic=topics.image_topic,
        image_type=topics.image_type,
        label_topic=topics.label_topic,
        class_set=model_classes,
        class_map=class_map,
        settings=options.outputs,
        model=report.model,
        checkpoint=report.checkpoint,
        frame_names=read_frame_names(bag),
    )


def with_progress(items: Iterable, total: int, progress: Progress | None) -> Iterable:
    """``items`` wrapped by ``progress`` (``total`` items expected), or as they are."""
    return items if progress is None else progress(items, total)


def log_unscored(report: EvaluationReport, total: int) -> None:
    """Warn when fewer than ``total`` frames were scored (frames without a label)."""
    if report.frames < total:
        LOG.warning(
            "%d of %d frames had no label and were not scored", total - report.frames, total
        )
