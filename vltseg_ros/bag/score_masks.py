"""``vltseg bag-eval --mask-topic``: score the masks already in a bag, loading no model.

The masks (mono8 ``sensor_msgs/Image``, recorded from the node, another run or another model)
are scored against the bag's labels as :mod:`vltseg_ros.bag.evaluate` scores a model's: from a
label topic matched by header stamp, or a labels folder matched by order.

What the mask values mean, first found wins:

1. the ``vision_msgs/msg/LabelInfo`` beside the masks (``<ns>/segmentation/label_info`` for
   ``<ns>/segmentation/mask``), as the node and ``--write-bag`` record it: its (class id, class
   name) pairs name the report's classes by id (``unused_<id>`` at ids it skips, n/a in the
   report); 255 is unlabeled, never a class. The labels must hold its ids (or 255).
2. a ``vltseg_ros/msg/ClassSet`` topic of the bag (names by id and its ignore index);
3. the class names of the masks' SegmentationInfo topic (``<ns>/segmentation/info``);
4. the Cityscapes classes.

With the outputs' class map the masks are taken to be in its output classes and only the labels
(Cityscapes train ids) are mapped with its lookup table: the classes the bag records beside the
masks (1-3 above) must be the map's, or scoring is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vltseg_ros.bag.evaluate import (
    BagEvalOptions,
    Progress,
    empty_report,
    label_option,
    log_unscored,
    score_frame,
    with_progress,
)
from vltseg_ros.bag.label_folders import folder_labels, read_folder_label
from vltseg_ros.bag.reading import label_to_array, read_messages
from vltseg_ros.bag.topics import find_topics, open_bag
from vltseg_ros.bag.typestore import (
    CLASS_SET,
    IMAGE,
    LABEL_INFO,
    SEGMENTATION_INFO,
    require_label_info,
    typestore,
)
from vltseg_ros.config.class_map import UNLABELED, UNUSED, BoundClassMap, load_class_map
from vltseg_ros.config.model_config import load_class_set
from vltseg_ros.errors import BagError
from vltseg_ros.evaluation.metrics import ConfusionMatrix
from vltseg_ros.evaluation.report import EvaluationReport

LOG = logging.getLogger(__name__)
_MASK_VALUES = 256


@dataclass(frozen=True)
class _Recorded:
    """What a bag records beside its masks (:func:`_bag_metadata`).

    Attributes:
        label_info: (id, name) of the classes of the masks' LabelInfo, by id, 255 left out;
            None without a LabelInfo.
        label_info_topic: where the LabelInfo was looked for.
        names, ignore: class names by id and ignore index of a ClassSet topic, else the info
            messages' class names (ignore None); None when the bag has neither.
        info: model, checkpoint and latencies_ms for the report.
    """

    label_info: tuple[tuple[int, str], ...] | None
    label_info_topic: str
    names: tuple[str, ...] | None = None
    ignore: int | None = None
    info: dict = field(default_factory=dict)


def score_mask_topic(
    bag: Path, options: BagEvalOptions, progress: Progress | None = None
) -> EvaluationReport:
    """Score the mono8 masks of ``options.mask_topic`` against the labels, loading no model.

    The classes come from the LabelInfo beside the masks, else a ClassSet topic, else the info
    messages, else Cityscapes (module docstring); model, checkpoint and latencies
    (inference_latency / batch_frames, as :func:`~vltseg_ros.bag.evaluate.evaluate_bag`
    measures them) from the masks' SegmentationInfo topic (``<mask namespace>/info``) if it has
    one (else the checkpoint reads "unknown"). With the outputs' class map, the masks are taken
    to be in its output classes (those the bag records must be the map's) and the labels
    (Cityscapes train ids) are mapped with it.

    Raises:
        BagError: see :func:`~vltseg_ros.bag.topics.find_topics`; no labels; the bag records
            other classes than the class map's; a LabelInfo whose classes change during the bag
            or have ids a mono8 mask cannot hold; labels holding ids the LabelInfo does not list.
        ConfigError: invalid options, or a bad class map.
    """
    options.validate()
    mask_topic = str(options.mask_topic)
    topics = find_topics(bag, mask_topic, label_option(options))
    if topics.image_type != IMAGE:
        raise BagError(f"mask topic {mask_topic} must be a mono8 sensor_msgs/msg/Image topic")
    if topics.label_topic is None and options.labels_dir is None:
        raise BagError(
            f"bag {bag} has no label topic to score {mask_topic} against; name one "
            "(--label-topic) or give a labels folder (--labels)"
        )
    recorded = _bag_metadata(bag, mask_topic)
    class_map = _mask_class_map(options, recorded, mask_topic)
    report = _empty_report(recorded, class_map, str(bag))
    files = folder_labels(options.labels_dir, topics)
    labels = None if files is None else iter(files)
    messages = read_messages(bag, mask_topic, topics.label_topic)
    for message, label_message in with_progress(messages, topics.image_count, progress):
        mask = label_to_array(message.msg, f"mask on {mask_topic} at stamp {message.stamp_ns}")
        if labels is not None:
            label = read_folder_label(next(labels, None), mask.shape, message.stamp_ns)
        elif label_message is not None:
            label = label_to_array(label_message.msg, f"label at stamp {message.stamp_ns}")
        else:
            continue
        if class_map is None and recorded.label_info is not None:
            _check_label_ids(label, recorded, message.stamp_ns)
        score_frame(report.confusion, mask, label, message.stamp_ns, class_map)
        report.frames += 1
    log_unscored(report, topics.image_count)
    return report


def _empty_report(
    recorded: _Recorded, class_map: BoundClassMap | None, source: str
) -> EvaluationReport:
    """The report over the class map's output classes, else the recorded classes (LabelInfo,
    ClassSet, info names), else Cityscapes'."""
    if class_map is not None:
        return empty_report(class_map.classes, class_map, source=source, **recorded.info)
    if recorded.label_info is not None:
        names, ignore = _names_by_id(recorded.label_info), UNLABELED
    else:
        cityscapes = load_class_set("cityscapes")
        names = recorded.names or cityscapes.names
        ignore = cityscapes.ignore_index if recorded.ignore is None else recorded.ignore
    confusion = ConfusionMatrix(len(names), ignore)
    return EvaluationReport(names, confusion, source=source, **recorded.info)


def _names_by_id(classes: tuple[tuple[int, str], ...]) -> tuple[str, ...]:
    """Class names indexed by id 0..max id, ``unused_<id>`` where no class has the id."""
    names = [UNUSED.format(i) for i in range(max(i for i, _ in classes) + 1)]
    for class_id, name in classes:
        names[class_id] = name
    return tuple(names)


def _check_label_ids(label: np.ndarray, recorded: _Recorded, stamp: int) -> None:
    """Raise :class:`BagError` when ``label`` holds a value that is no class id of the
    LabelInfo and not 255: the labels and the masks use other ids."""
    present = np.bincount(label.ravel(), minlength=_MASK_VALUES) > 0
    present[[class_id for class_id, _ in recorded.label_info]] = False
    present[UNLABELED] = False
    other = np.flatnonzero(present)
    if other.size:
        raise BagError(
            f"the label at stamp {stamp} ns holds values {other.tolist()[:10]}, which are no "
            f"class ids of the masks' LabelInfo on {recorded.label_info_topic} "
            f"({_describe(recorded.label_info)}; 255 unlabeled): the labels must use the masks' "
            "ids; masks recorded with a class map are scored against train-id labels with that "
            "map (--class-map)"
        )


def _mask_class_map(
    options: BagEvalOptions, recorded: _Recorded, mask_topic: str
) -> BoundClassMap | None:
    """The outputs' class map bound to the labels' Cityscapes classes, checked against the
    classes the bag records beside the masks (None without a class map)."""
    if not options.outputs.class_map:
        return None
    class_map = load_class_map(options.outputs.class_map, load_class_set("cityscapes"))
    if recorded.label_info is not None:
        if recorded.label_info != class_map.labels():
            raise BagError(
                f"the masks on {mask_topic} are in classes {_describe(recorded.label_info)} (as "
                f"the LabelInfo on {recorded.label_info_topic} records them), not in the class "
                f"map's {_describe(class_map.labels())}: score them without --class-map, or "
                "record them with this map"
            )
    elif recorded.names is not None and tuple(recorded.names) != class_map.classes.names:
        raise BagError(
            f"the masks on {mask_topic} are in classes {', '.join(recorded.names)} (as the bag "
            f"records them), not in the class map's {', '.join(class_map.classes.names)}: "
            "score them without --class-map, or record them with this map"
        )
    return class_map


def _describe(classes: tuple[tuple[int, str], ...]) -> str:
    """``0 road, 1 sidewalk``."""
    return ", ".join(f"{class_id} {name}" for class_id, name in classes)


def _bag_metadata(bag: Path, mask_topic: str) -> _Recorded:
    """The LabelInfo, class names, ignore index and model / checkpoint / latencies stored
    beside the masks (:class:`_Recorded`)."""
    namespace = mask_topic.rsplit("/", 1)[0]
    info_topic, label_info_topic = f"{namespace}/info", f"{namespace}/label_info"
    info: dict = {"model": "", "checkpoint": f"unknown (masks read from {mask_topic})"}
    class_sets, info_names, latencies, label_infos = [], [], [], []
    with open_bag(bag) as reader:
        wanted = [
            c
            for c in reader.connections
            if c.msgtype == CLASS_SET
            or (c.topic == info_topic and c.msgtype == SEGMENTATION_INFO)
            or (c.topic == label_info_topic and c.msgtype == LABEL_INFO)
        ]
        if any(c.msgtype == LABEL_INFO for c in wanted):
            require_label_info()
        messages = reader.messages(connections=wanted) if wanted else ()  # () would read all
        for connection, _, data in messages:
            msg = typestore().deserialize_cdr(data, connection.msgtype)
            if connection.msgtype == CLASS_SET:
                class_sets.append((tuple(msg.names), int(msg.ignore_index)))
            elif connection.msgtype == LABEL_INFO:
                label_infos.append(msg)
            else:
                info = {"model": msg.model, "checkpoint": msg.checkpoint}
                info_names.append(tuple(msg.class_names))
                latencies.append(1e3 * msg.inference_latency / max(msg.batch_frames, 1))
    if class_sets:
        names, ignore = class_sets[-1]
    else:
        names, ignore = (info_names[-1] if info_names else None), None
    return _Recorded(
        _label_info_classes(label_infos, label_info_topic),
        label_info_topic,
        names,
        ignore,
        {**info, "latencies_ms": latencies},
    )


def _label_info_classes(messages: list, topic: str) -> tuple[tuple[int, str], ...] | None:
    """(id, name) by id, 255 left out, of the LabelInfo ``messages`` (rosbags objects) on
    ``topic``; None without one.

    Raises:
        BagError: the messages list other classes from one to the next (their thresholds may
            differ), an id twice, an id over 255 (a mono8 mask cannot hold it), or no class.
    """
    if not messages:
        return None
    found = [sorted((int(c.class_id), str(c.class_name)) for c in m.class_map) for m in messages]
    changed = next((k for k, entries in enumerate(found) if entries != found[0]), None)
    if changed is not None:
        raise BagError(
            f"the LabelInfo on {topic} changes its classes during the bag (message "
            f"{changed + 1} of {len(found)}): the masks are not all in the same classes, so "
            "they cannot be scored together"
        )
    ids = [class_id for class_id, _ in found[0]]
    classes = tuple(entry for entry in found[0] if entry[0] != UNLABELED)
    problem = ""
    if twice := sorted({i for i in ids if ids.count(i) > 1}):
        problem = f"lists ids {twice} twice"
    elif too_big := sorted(i for i in ids if i > UNLABELED):
        problem = f"lists ids {too_big}, which a mono8 mask cannot hold (0-254, 255 unlabeled)"
    elif not classes:
        problem = "lists no class but 255 (unlabeled)"
    if problem:
        raise BagError(f"the LabelInfo on {topic} {problem}: its masks cannot be scored")
    LOG.info("class ids and names of the masks: the LabelInfo on %s (%d)", topic, len(classes))
    return classes
