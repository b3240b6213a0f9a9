"""An ``.onnx`` file's metadata is read from its top-level fields: the graph is never read, so a
1 GB file that is not a VLTSeg export is refused at once and with no memory."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from test.subprocess_json import run_json
from vltseg_ros.engines import OnnxRuntimeEngine
from vltseg_ros.errors import CheckpointError
from vltseg_ros.export.onnx_export import read_onnx_info
from vltseg_ros.export.onnx_header import read_metadata_props

GIB = 1 << 30

# Reads an .onnx file's info in a fresh process; prints seconds and the growth of the peak RSS.
_MEASURE = """
import json, resource, sys, time
from pathlib import Path
from vltseg_ros.errors import CheckpointError
from vltseg_ros.export.onnx_export import read_onnx_info
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    read_onnx_info(Path(sys.argv[1]))
    message = None
except CheckpointError as exc:
    message = str(exc)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"seconds": time.perf_counter() - start, "grown_mb": grown, "message": message}))
"""


def _sparse(path: Path, head: bytes, size: int) -> Path:
    """``head`` followed by zeros up to ``size`` bytes, as a sparse file (no disk used)."""
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _measure(path: Path) -> dict:
    return run_json(_MEASURE, path)


def test_a_large_junk_file_is_refused_from_its_first_bytes(tmp_path) -> None:
    result = _measure(_sparse(tmp_path / "junk.onnx", b"", GIB))
    assert result["message"] == (
        f"{str(tmp_path / 'junk.onnx')!r} is not an ONNX model (a serialized ModelProto): it "
        "starts with b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'"
    )
    assert result["grown_mb"] < 50, result  # onnx.load read all of it: 1 GB more
    assert result["seconds"] < 2, result


def test_a_large_protobuf_without_metadata_is_refused_without_reading_its_graph(tmp_path) -> None:
    graph = GIB - 16
    head = b"\x08\x08" + b"\x3a" + _varint(graph)  # ir_version 8, graph of ~1 GB
    path = _sparse(tmp_path / "plain.onnx", head, len(head) + graph)
    result = _measure(path)
    assert "carries no vltseg_ros metadata" in result["message"]
    assert result["grown_mb"] < 50, result
    assert result["seconds"] < 2, result


def test_size_truncation_and_missing_graph(tmp_path, tiny_onnx) -> None:
    over = _sparse(tmp_path / "over.onnx", b"\x08\x08", 3 * GIB)
    with pytest.raises(CheckpointError, match=r"3\.0 GiB, more than protobuf can hold"):
        read_onnx_info(over)
    data = tiny_onnx[1].read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is truncated: not a whole ONNX model"):
        read_onnx_info(truncated)
    no_graph = tmp_path / "no_graph.onnx"
    no_graph.write_bytes(b"\x08\x08")
    with pytest.raises(CheckpointError, match="holds no graph"):
        read_onnx_info(no_graph)
    with pytest.raises(CheckpointError, match="not an ONNX model"):
        OnnxRuntimeEngine(_sparse(tmp_path / "junk.onnx", b"", GIB))


def test_metadata_equals_what_onnx_parses(tiny_onnx, no_metadata_onnx) -> None:
    for path in (tiny_onnx[1], no_metadata_onnx):
        parsed = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert read_metadata_props(Path(path)) == parsed
    assert read_metadata_props(tiny_onnx[1])["vltseg_ros.format"] == "vltseg_ros.onnx.v1"
    assert os.path.getsize(tiny_onnx[1]) > 100_000  # the graph it skipped holds the weights
