"""float32 -> float16 conversion of an exported ONNX graph, keeping float32 inputs and outputs.

Weights and most compute become float16 (``onnxconverter_common.float16``); the normalization
ops stay in float32 behind casts, because their mean / variance reductions over 256-1024
channels overflow or lose precision in float16 on some runtimes (TensorRT warns about exactly
this for LayerNorm). Resize, Range, Min / Max and TopK also stay float32 (the converter's
default block list: runtimes lack float16 kernels for some of them).
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import onnx

LOG = logging.getLogger(__name__)

FLOAT32_OPS = ("LayerNormalization", "InstanceNormalization", "GroupNormalization")
"""Ops kept in float32 in a float16 export, besides the converter's default block list."""


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert an exported float32 graph to float16 weights and compute.

    Args:
        model: a float32 graph with complete ``value_info`` (as the dynamo exporter writes it;
            shape inference is not re-run, so graphs over 2 GB convert too).

    Returns:
        A new model whose float inputs and outputs are still float32 (a Cast follows each
        input and precedes each output), with float16 initializers; weights beyond float16's
        range are clamped to +-10000 and those closer to zero than 1e-7 become +-1e-7.
    """
    from onnxconverter_common import float16  # imported here: only fp16 exports need it

    block = sorted({*float16.DEFAULT_OP_BLOCK_LIST, *FLOAT32_OPS})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=block, disable_shape_infer=True
        )
    clamped = sum("truncated" in str(w.message) for w in caught)
    if clamped:
        LOG.info(
            "fp16: %d weight tensor(s) had values beyond +-10000 or within +-1e-7 clamped",
            clamped,
        )
    kept = Counter(node.op_type for node in converted.graph.node if node.op_type in block)
    LOG.info(
        "fp16: converted; kept in float32: %s",
        ", ".join(f"{count} {op}" for op, count in sorted(kept.items())) or "nothing",
    )
    return converted
