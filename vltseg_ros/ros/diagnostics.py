"""diagnostic_msgs statuses for /diagnostics: one per camera and one for the engine."""

from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.ros.parameters import NodeSettings
from vltseg_ros.ros.scheduling import CameraCounters
from vltseg_ros.ros.statistics import StatsSnapshot


def camera_status(
    node_name: str,
    camera: str,
    snapshot: StatsSnapshot,
    counters: CameraCounters,
    new_drops: int,
) -> DiagnosticStatus:
    """Rates, latency percentiles (ms) and drop / error counts of one camera.

    Level: ERROR when processing errors occurred, WARN when frames arrive but none are
    published or ``new_drops`` frames were dropped as stale / bad since the last report, else
    OK. (Busy drops are normal: a camera faster than inference.)
    """
    values = {
        "input_rate_hz": snapshot.input_rate,
        "output_rate_hz": snapshot.output_rate,
        "latency_p50_ms": snapshot.latency_p50 * 1e3,
        "latency_p95_ms": snapshot.latency_p95 * 1e3,
        "inference_p50_ms": snapshot.inference_p50 * 1e3,
        "inference_p95_ms": snapshot.inference_p95 * 1e3,
        "received": counters.received,
        "published": snapshot.published,
        "dropped_stale": counters.dropped_stale,
        "dropped_busy": counters.dropped_busy,
        "dropped_bad_input": snapshot.bad_input,
        "errors": snapshot.errors,
        "last_error": snapshot.last_error,
    }
    if snapshot.errors:
        level, message = DiagnosticStatus.ERROR, f"{snapshot.errors} processing error(s)"
    elif snapshot.input_rate > 0 and snapshot.output_rate == 0:
        level, message = DiagnosticStatus.WARN, "frames arrive but no result is published"
    elif new_drops:
        level, message = DiagnosticStatus.WARN, "frames dropped (stale or bad input)"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    return _status(level, f"{node_name}: camera {camera}", message, camera, values)


def engine_status(
    node_name: str, settings: NodeSettings, segmenter: Segmenter | None
) -> DiagnosticStatus:
    """Model, weights, backend and engine (providers); WARN while inactive or with random
    weights."""
    values = {
        "model": segmenter.config.name if segmenter else settings.model,
        "checkpoint": settings.checkpoint or "none (random weights)",
        "backend": segmenter.backend if segmenter else settings.backend,
        "engine": segmenter.description if segmenter else "",
        "device": settings.device,
        "precision": settings.precision,
        "mode": segmenter.inference.mode if segmenter else "",
        # lowered after a GPU out-of-memory error (see Segmenter)
        "batch_size": segmenter.batch_size if segmenter else settings.batch_size,
        "active": segmenter is not None,
    }
    if segmenter is None:
        level, message = DiagnosticStatus.WARN, "inactive: no model loaded"
    elif segmenter.random_weights:
        level, message = DiagnosticStatus.WARN, "RANDOM weights: output is meaningless"
    else:
        level, message = DiagnosticStatus.OK, "ok"
    return _status(level, f"{node_name}: engine", message, settings.device, values)


def _status(
    level: bytes, name: str, message: str, hardware_id: str, values: dict[str, object]
) -> DiagnosticStatus:
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)
