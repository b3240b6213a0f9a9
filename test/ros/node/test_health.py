"""CameraHealth: one object counts a camera's frames and fills its own diagnostic status."""

from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticStatus

from vltseg_ros.ros.node.health import CameraHealth, DiagnosticStatusWrapper


def _run(health: CameraHealth) -> tuple[bytes, str, dict[str, str]]:
    stat = health.run(DiagnosticStatusWrapper(name=health.name, hardware_id="front"))
    return stat.level, stat.message, {kv.key: kv.value for kv in stat.values}


def test_counts_rates_and_percentiles() -> None:
    health = CameraHealth("node: camera front", window=10.0)
    for latency in (0.01, 0.02, 0.03, 0.04):
        health.received()
        health.published(latency, latency / 2)
        time.sleep(0.05)
    health.received()
    health.dropped("busy")
    level, message, values = _run(health)
    assert (level, message) == (DiagnosticStatus.OK, "ok")  # busy drops are normal
    assert (values["received"], values["published"], values["dropped_busy"]) == ("5", "4", "1")
    assert float(values["latency_p50_ms"]) == 25.0 and float(values["inference_p50_ms"]) == 12.5
    assert 10 < float(values["input_rate_hz"]) < 40 and float(values["output_rate_hz"]) > 10
    assert values["errors"] == "0" and values["last_error"] == ""
    assert health.counts()["received"] == 5


def test_levels_report_what_happened_since_the_last_run() -> None:
    health = CameraHealth("node: camera c")
    health.received()
    health.failed("inference failed: EngineError: boom")
    health.bad_input("image data is too short")
    level, message, values = _run(health)
    assert level == DiagnosticStatus.ERROR
    assert message == "1 processing error(s); frames dropped (stale or bad input)"  # merged
    assert values["last_error"] == "image data is too short"
    assert values["errors"] == "1" and values["dropped_bad_input"] == "1"
    level, message, values = _run(health)  # nothing new: the error is history, not a state
    assert (level, message) == (DiagnosticStatus.OK, "ok") and values["errors"] == "1"
    health.dropped("stale")
    assert _run(health)[:2] == (DiagnosticStatus.WARN, "frames dropped (stale or bad input)")


def test_an_idle_camera_is_ok_with_nan_latencies() -> None:
    level, _, values = _run(CameraHealth("node: camera idle"))
    assert level == DiagnosticStatus.OK and values["latency_p95_ms"] == "nan"
    assert values["input_rate_hz"] == "0.000"
