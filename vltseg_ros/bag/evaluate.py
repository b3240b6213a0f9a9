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

:func:`score_bag` scores a share of a bag's frames (every ``count``-th frame from ``index``:
one process's share under torchrun) into a :class:`BagScores`, whose counts add up
(:meth:`BagScores.merge`) to what one process scoring the whole bag counts;
:func:`evaluate_bag` scores the whole bag into its report. Several bags:
:mod:`vltseg_ros.bag.fleet`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vltseg_ros.bag.frame_names import read_frame_names
from vltseg_ros.bag.label_folders import (
    checked_truth,
    folder_labels,
    folder_truths,
    read_folder_label,
    read_folder_truth,
)
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
    folder_truths(options.anomaly_dir, topics)
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
    scores = score_bag(bag, segmenter, options, checkpoint=checkpoint, progress=progress)
    return scores.report()


@dataclass
class BagScores:
    """What :func:`score_bag` counted on (a share of) one bag, to be added up and reported.

    Attributes:
        counts: the report being filled: confusion matrix, frames scored, provenance (its
            ``latencies_ms``, ``calibration`` and ``anomaly`` are set by :meth:`report`).
        calibration: the scored pixels' calibration statistics.
        anomaly: pooled anomaly scores (None without anomaly truth).
        anomaly_where: the anomaly topic or folder (for messages).
        latencies: (frame index, engine ms per frame) of every frame segmented.
    """

    counts: EvaluationReport
    calibration: CalibrationAccumulator = field(default_factory=CalibrationAccumulator)
    anomaly: AnomalyScoring | None = None
    anomaly_where: str = ""
    latencies: list[tuple[int, float]] = field(default_factory=list)

    def merge(self, other: BagScores) -> None:
        """Add ``other``'s counts (another share of the same bag, or another bag with the same
        classes and options): :mod:`vltseg_ros.evaluation.sharding` says what is exact."""
        self.counts.confusion.merge(other.counts.confusion)
        self.counts.frames += other.counts.frames
        self.calibration.merge(other.calibration)
        if self.anomaly is not None and other.anomaly is not None:
            self.anomaly.merge(other.anomaly)
        self.latencies += other.latencies

    def report(self, processes: int = 1, *, warn: bool = True) -> EvaluationReport:
        """The report: latencies in frame order, ECE, anomaly metrics; ``processes`` (how many
        shared the frames) recorded. Warns when frames had no label (and ``warn``).

        Raises:
            BagError: anomaly truth was asked for but no frame had one.
            EvaluationError: the anomaly truth holds no anomaly or no in-distribution pixel.
        """
        report = copy.deepcopy(self.counts)
        report.latencies_ms = [ms for _, ms in sorted(self.latencies, key=lambda x: x[0])]
        report.calibration = calibration_result(self.calibration)
        report.processes = processes
        if self.anomaly is not None:
            if self.anomaly.frames == 0:
                where = self.anomaly_where
                raise BagError(f"no frame of {report.source} has anomaly truth on {where}")
            report.anomaly = self.anomaly.report(
                source=f"{report.source} ({self.anomaly_where})",
                model=report.model,
                checkpoint=report.checkpoint,
                processes=processes,
            )
        if warn:
            log_unscored(report, len(report.latencies_ms))
        return report


def score_bag(
    bag: Path,
    segmenter: Segmenter,
    options: BagEvalOptions,
    *,
    checkpoint: str = "",
    progress: Progress | None = None,
    share: tuple[int, int] = (0, 1),
) -> BagScores:
    """Segment a share of ``bag``'s frames and count their scores (:func:`evaluate_bag`'s
    arguments and errors, but nothing is reported yet).

    Args:
        share: (index, count): the frames whose position in the image topic is ``index``
            modulo ``count`` (a process's share: (rank, world size)); (0, 1): all. The share
            pools its anomaly pixels with sampling seed ``index``. Only a whole bag
            (``count`` 1) may be written (``options.write_bag``).

    Raises:
        ConfigError: a share that is not 0 <= index < count, or a share written to a bag.
    """
    index, count = share
    if not 0 <= index < count:
        raise ConfigError(f"share {index} of {count} does not exist")
    if count > 1 and options.write_bag is not None:
        raise ConfigError("a share of a bag's frames cannot be written to a bag: write whole bags")
    topics = check_inputs(bag, options)
    frames = iter_frames(
        bag,
        topics.image_topic,
        topics.label_topic,
        topics.anomaly_topic,
        keep=None if count == 1 else lambda k: k % count == index,
    )
    class_map = options.outputs.load_class_map(segmenter.class_set)
    class_set = segmenter.class_set if class_map is None else class_map.classes
    report = empty_report(
        class_set, class_map, source=str(bag), model=segmenter.config.name, checkpoint=checkpoint
    )
    scorer = _FrameScorer(report, options, topics, class_map, seed=index)
    writer = _output_writer(bag, topics, options, segmenter.class_set, class_map, report)
    frames = with_progress(frames, len(range(index, topics.image_count, count)), progress)
    stream = ((frame, frame.image, frame.color_order, None) for frame in frames)
    predict = {**options.outputs.predict_options(class_map), "output_size": None}
    if scorer.scores.anomaly is not None:
        predict |= scorer.scores.anomaly.predict_options()
    if writer is not None:  # the written bag has the anomaly topic too
        predict["return_anomaly"] = True
    try:
        for batch, results, seconds in segmenter.predict_stream(stream, **predict):
            for frame, result in zip(batch, results, strict=True):
                scorer.scores.latencies.append((frame.index, 1e3 * seconds / len(batch)))
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
    return scorer.scores


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
    """Scores each segmented frame of :func:`score_bag` into its :class:`BagScores`: the label
    (confusion matrix, calibration; mapped with the class map, if any) and the anomaly truth
    (:class:`AnomalyScoring`)."""

    def __init__(
        self,
        report: EvaluationReport,
        options: BagEvalOptions,
        topics: BagTopics,
        class_map: BoundClassMap | None,
        seed: int = 0,
    ) -> None:
        self.class_map = class_map
        self.ignore_index = report.confusion.ignore_index
        self.labels = folder_labels(options.labels_dir, topics)
        self.truths = folder_truths(options.anomaly_dir, topics)
        method = options.outputs.anomaly_method
        self.scores = BagScores(
            report,
            anomaly=AnomalyScoring(method, seed) if options.scores_anomaly else None,
            anomaly_where=str(options.anomaly_topic or options.anomaly_dir or ""),
        )

    def score(self, frame: BagFrame, result: SegmentationResult) -> np.ndarray | None:
        """Score one frame; returns its label as read (None without one)."""
        scores, shape = self.scores, frame.image.shape[:2]
        label = frame.label
        if self.labels is not None:
            pair = _at(self.labels, frame.index)
            label = read_folder_label(pair, shape, frame.stamp_ns)
        if label is not None:
            scored = score_frame(
                scores.counts.confusion, result.labels, label, frame.stamp_ns, self.class_map
            )
            add_calibration(scores.calibration, result, scored, self.ignore_index)
            scores.counts.frames += 1
        if scores.anomaly is not None:
            truth = frame.anomaly
            if self.truths is not None:
                truth = read_folder_truth(_at(self.truths, frame.index), shape, frame.stamp_ns)
            if truth is not None:
                scores.anomaly.add(result, checked_truth(truth, frame.stamp_ns))
        return label


def _at(files: list, index: int) -> Any:
    """``files[index]``, or None past the end."""
    return files[index] if index < len(files) else None


def label_option(options: BagEvalOptions) -> str | None:
    """The label topic to look for: none when labels come from a folder."""
    return None if options.labels_dir else options.label_topic


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
