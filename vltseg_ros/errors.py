"""Exceptions raised by the vltseg_ros core.

Every error a user can cause (bad image, bad configuration, bad checkpoint) raises a subclass of
:class:`VLTSegError` with a message that says what was wrong and what to do. Callers such as the
ROS node catch :class:`VLTSegError` to log, count and skip instead of crashing.
"""

from __future__ import annotations


class VLTSegError(Exception):
    """Base class of every error the core raises on bad user input."""


class ConfigError(VLTSegError, ValueError):
    """A model, class-set or inference configuration is invalid."""


class UnknownModelError(ConfigError, KeyError):
    """A model name matches neither a built-in configuration nor a file."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidImageError(VLTSegError, ValueError):
    """An input image has the wrong dtype, shape, channel count or size."""


class CheckpointError(VLTSegError):
    """A checkpoint file is unreadable, unsafe or does not match the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path does not exist."""


class DeviceError(VLTSegError, RuntimeError):
    """The requested device or precision is not available on this machine."""


class BagError(VLTSegError):
    """A rosbag2 (or frames folder) is missing, unreadable, corrupt or lacks what is needed."""


class EngineError(VLTSegError, RuntimeError):
    """An inference engine (PyTorch or ONNX Runtime) failed to start or to run, or is closed."""


class EngineOutOfMemoryError(EngineError):
    """An engine ran out of (GPU) memory on a batch; a smaller batch may still fit."""


class NonFiniteOutputError(EngineError):
    """A network produced NaN or infinite class scores (weights that are not weights, or an
    overflow in reduced precision); nothing is derived from them."""


class ExportError(VLTSegError):
    """A model could not be exported (e.g. to ONNX) or the result could not be written."""


class DatasetError(VLTSegError):
    """A data set folder or file is missing, unreadable, or does not match its layout."""


class TrainingError(VLTSegError, RuntimeError):
    """Training cannot start or continue (output folder, resume state, distributed setup)."""


class EvaluationError(VLTSegError, ValueError):
    """Evaluation inputs are inconsistent (shapes, value ranges) or cannot give a metric (e.g.
    anomaly truth without a single anomaly pixel)."""
