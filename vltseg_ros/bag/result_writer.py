"""A bag of segmentation results: the input frames plus the node's output topics.

For an image topic ``<ns>/image_raw`` (or ``<ns>/image_raw/compressed``) the outputs go where
the node publishes them (:func:`vltseg_ros.inference.outputs.output_topic` of ``<ns>``): mask,
confidence, overlay, anomaly and info, built by
:func:`vltseg_ros.inference.outputs.frame_outputs`, each with the input image's header and log
time; and, as the node publishes it, one vision_msgs/LabelInfo on ``label_info`` (the class ids
and names the masks hold, from :func:`vltseg_ros.inference.outputs.label_entries`, and the
confidence threshold) with the first frame's header and log time. The input images are copied
byte for byte and the labels (from the bag, or from a labels folder as mono8 on
``<ns>/labels``) beside them, so the written bag can be scored again with ``vltseg bag-eval
--mask-topic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from vltseg_ros.bag.frame_names import FRAME_NAMES_KEY, encode_frame_names
from vltseg_ros.bag.reading import BagFrame
from vltseg_ros.bag.serialization import image_cdr, label_info_cdr, outputs_cdr
from vltseg_ros.bag.topics import camera_name, output_namespace
from vltseg_ros.bag.typestore import IMAGE, LABEL_INFO, SEGMENTATION_INFO, require_label_info
from vltseg_ros.bag.writing import BagWriter, Storage
from vltseg_ros.config.class_map import BoundClassMap
from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.inference.outputs import LABEL_INFO as LABEL_INFO_OUTPUT
from vltseg_ros.inference.outputs import OutputSettings, frame_outputs, label_entries, output_topic
from vltseg_ros.inference.result import SegmentationResult


class SegmentationBagWriter:
    """Writes frames and their segmentation results into a new bag.

    Args:
        path: the bag directory to create (must not exist).
        storage: "mcap" or "sqlite3".
        image_topic, image_type: the input camera topic and its type.
        label_topic: where labels are written (None: ``<ns>/labels`` when a frame has one).
        class_set: the model's class names and palette (overlay colors, info class names,
            label_info).
        settings: the threshold the masks were made with, the confidence encoding, the
            overlay's alpha.
        model, checkpoint: reported in every info message ("" checkpoint = random weights).
        class_map: the class map the results were predicted with (its output classes replace
            ``class_set``'s), or None.
        frame_names: the input bag's frame names by stamp (:mod:`vltseg_ros.bag.frame_names`),
            stored in the written bag too.

    The label_info is written once, with the first frame: its classes and threshold are fixed
    for the writer's life (an offline run changes neither).
    """

    def __init__(
        self,
        path: Path,
        storage: Storage,
        *,
        image_topic: str,
        image_type: str,
        label_topic: str | None,
        class_set: ClassSetConfig,
        settings: OutputSettings,
        model: str,
        checkpoint: str,
        class_map: BoundClassMap | None = None,
        frame_names: Mapping[int, str] | None = None,
    ) -> None:
        namespace = output_namespace(image_topic)
        self.camera = camera_name(image_topic)
        self.topics = {
            kind: output_topic(namespace, kind)
            for kind in ("mask", "confidence", "overlay", "anomaly", "info")
        }
        self.image_topic = image_topic
        self.label_topic = label_topic or f"{namespace}/labels"
        self.label_info_topic = output_topic(namespace, LABEL_INFO_OUTPUT)
        self._info = {"camera": self.camera, "model": model, "checkpoint": checkpoint}
        self._class_set, self._class_map, self._settings = class_set, class_map, settings
        self._labels = label_entries(class_set, class_map)
        self._label_info_written = False
        require_label_info()  # before the bag is created
        self._writer = BagWriter(path, storage)
        self._writer.add_topic(image_topic, image_type)
        for kind, topic in self.topics.items():
            self._writer.add_topic(topic, SEGMENTATION_INFO if kind == "info" else IMAGE)
        self._writer.add_topic(self.label_info_topic, LABEL_INFO)
        if frame_names:
            self._writer.set_custom_data(FRAME_NAMES_KEY, encode_frame_names(frame_names))

    @property
    def counts(self) -> dict[str, int]:
        """topic -> messages written so far."""
        return dict(self._writer.counts)

    def write(
        self,
        frame: BagFrame,
        result: SegmentationResult,
        batch_seconds: float,
        batch_frames: int,
        label: np.ndarray | None = None,
    ) -> None:
        """Write one frame, its label and its results (``result.summary`` must be set).

        Args:
            frame: the input frame (its message is copied unchanged).
            result: labels and confidence at the frame's size, with a summary.
            batch_seconds: engine time of the batch the frame ran in (the info message's
                inference and end-to-end latency: offline there is no transport).
            batch_frames: frames in that batch.
            label: a (H, W) uint8 label from outside the bag (written to ``<ns>/labels``).
        """
        message = frame.message
        stamp, frame_id, log_time = message.stamp_ns, message.frame_id, message.log_time_ns
        self._writer.write(self.image_topic, log_time, message.cdr)
        if frame.label_message is not None or label is not None:
            self._writer.add_topic(self.label_topic, IMAGE)
            cdr = (
                frame.label_message.cdr
                if label is None
                else image_cdr(label, "mono8", stamp, frame_id)
            )
            self._writer.write(self.label_topic, log_time, cdr)
        if not self._label_info_written:
            threshold = self._settings.confidence_threshold
            cdr = label_info_cdr(stamp, frame_id, self._labels, threshold)
            self._writer.write(self.label_info_topic, log_time, cdr)
            self._label_info_written = True
        outputs = frame_outputs(
            result,
            frame.image,
            frame.color_order,
            self._settings,
            class_set=self._class_set,
            class_map=self._class_map,
            with_overlay=True,
            inference_latency=batch_seconds,
            end_to_end_latency=batch_seconds,
            batch_frames=batch_frames,
            **self._info,
        )
        for kind, cdr in outputs_cdr(outputs, stamp, frame_id).items():
            self._writer.write(self.topics[kind], log_time, cdr)

    def close(self) -> None:
        """Finish the bag and move it to its path (until then it is written beside it)."""
        self._writer.close()

    def discard(self) -> None:
        """Delete the partly written bag (after an error)."""
        self._writer.discard()
