"""An ``.onnx`` file's metadata, read from its top-level protobuf fields without reading its graph.

An ONNX file is one serialized ``ModelProto``. Its weights sit inside the ``graph`` field (up to
2 GB); ``metadata_props``, where exports keep their description, is a few kilobytes.
:func:`read_metadata_props` walks the top-level fields and skips the ones it does not need by
seeking, so a 1 GB file costs a few small reads, and a file that is not an ONNX protobuf (an
image, text, zeros) fails on its first bytes. The graph itself is parsed later, by ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import onnx
from google.protobuf.message import DecodeError

from vltseg_ros.errors import CheckpointError

MAX_ONNX_BYTES = 2**31 - 1
"""Largest ``.onnx`` file: protobuf cannot hold 2 GiB (larger weights go to external data)."""
_MAX_METADATA_BYTES = 16 << 20
_MAX_FIELDS = 100_000
"""Top-level fields an ONNX model has: about ten, plus one per metadata entry, opset, function."""
# Fields of ModelProto with a fixed wire type: ir_version (varint), graph and metadata_props
# (length-delimited); any other field may have any valid wire type.
_IR_VERSION, _GRAPH, _METADATA = 1, 7, 14
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_WIRE_TYPES = {_IR_VERSION: _VARINT, _GRAPH: _LENGTH, _METADATA: _LENGTH}
_FIXED_SIZES = {_FIXED64: 8, _FIXED32: 4}


def read_metadata_props(path: Path) -> dict[str, str]:
    """The ``metadata_props`` of the ONNX model in ``path`` (an existing file).

    Raises:
        CheckpointError: a file over :data:`MAX_ONNX_BYTES`, not an ONNX protobuf (naming its
            first bytes), truncated, or without a graph.
    """
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise CheckpointError(
            f"{str(path)!r} is not an ONNX model: {size / 2**30:.1f} GiB, more than protobuf "
            "can hold (an export keeps larger weights in a separate .onnx.data file)"
        )
    props: dict[str, str] = {}
    seen: set[int] = set()
    with path.open("rb") as handle:
        for _ in range(_MAX_FIELDS):
            if handle.tell() >= size:
                break
            tag = _varint(handle, path)
            field, wire = tag >> 3, tag & 7
            valid = wire in (_VARINT, _FIXED64, _LENGTH, _FIXED32)
            if field == 0 or not valid or wire != _WIRE_TYPES.get(field, wire):
                raise _not_onnx(path)
            seen.add(field)
            if wire == _VARINT:
                _varint(handle, path)
                continue
            length = _varint(handle, path) if wire == _LENGTH else _FIXED_SIZES[wire]
            if handle.tell() + length > size:
                raise CheckpointError(f"{str(path)!r} is truncated: not a whole ONNX model")
            if field == _METADATA:
                props.update([_metadata_entry(handle, length, path)])
            else:
                handle.seek(length, 1)
        else:
            raise _not_onnx(path)
    if _GRAPH not in seen:
        raise CheckpointError(f"{str(path)!r} is not an ONNX model: it holds no graph")
    return props


def _varint(handle: BinaryIO, path: Path) -> int:
    value = 0
    for shift in range(0, 70, 7):
        byte = handle.read(1)
        if not byte:
            raise CheckpointError(f"{str(path)!r} is truncated: not a whole ONNX model")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
    raise _not_onnx(path)


def _metadata_entry(handle: BinaryIO, length: int, path: Path) -> tuple[str, str]:
    if length > _MAX_METADATA_BYTES:
        raise CheckpointError(
            f"{str(path)!r} has a metadata entry of {length} bytes (at most "
            f"{_MAX_METADATA_BYTES} expected): not an export of this project"
        )
    try:
        entry = onnx.StringStringEntryProto.FromString(handle.read(length))
    except DecodeError as exc:
        raise CheckpointError(f"{str(path)!r} has corrupt ONNX metadata: {exc}") from exc
    return entry.key, entry.value


def _not_onnx(path: Path) -> CheckpointError:
    with path.open("rb") as handle:
        head = handle.read(8)
    return CheckpointError(
        f"{str(path)!r} is not an ONNX model (a serialized ModelProto): it starts with {head!r}"
    )
