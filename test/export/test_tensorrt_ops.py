"""The exported graphs stay inside what TensorRT's ONNX parser takes (checked without a GPU).

ONNX Runtime's TensorRT provider gives TensorRT only the nodes its parser supports and runs the
rest on the CUDA provider: a graph with one unsupported node still runs, split in pieces and
slower, without an error. So every node of the exports (tiny: the op set of the CLIP ViT
models, ViT-B/16 and ViT-L/14 export the same op types; tiny-eva: EVA02 with RoPE and SwiGLU;
and the ``--fp16`` conversion) is checked against the operator table of onnx-tensorrt
(``docs/operators.md`` for TensorRT 10.0, opsets 9-20) and the restrictions it lists for the
ops used. An op that is not in ``TENSORRT_OPS`` must be looked up there before it is added.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from vltseg_ros.export.fp16 import convert_to_fp16
from vltseg_ros.export.onnx_export import export_onnx
from vltseg_ros.model.segmentor import build_model

# Ops the exports use, each "supported" by TensorRT 10.0's ONNX parser for float32 / float16.
TENSORRT_OPS = frozenset(
    {
        "Add",
        "And",
        "Cast",
        "Concat",
        "Constant",
        "Conv",
        "ConvTranspose",
        "Div",
        "Einsum",
        "Erf",
        "Expand",
        "Floor",
        "Gather",
        "Gemm",
        "GreaterOrEqual",
        "InstanceNormalization",
        "LayerNormalization",
        "Less",
        "MatMul",
        "MaxPool",
        "Mul",
        "Neg",
        "Not",
        "Range",
        "ReduceMin",
        "Relu",
        "Reshape",
        "Resize",
        "Shape",
        "Sigmoid",
        "Slice",
        "Softmax",
        "Split",
        "Squeeze",
        "Sub",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)
OPSETS = range(9, 21)
# Input positions that the parser needs as constants (initializers or Constant nodes).
CONSTANT_AXES = {"ReduceMin": 1, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1}
RESIZE_MODES = {b"nearest", b"linear"}
RESIZE_COORDINATES = {
    b"half_pixel",
    b"pytorch_half_pixel",
    b"tf_half_pixel_for_nn",
    b"asymmetric",
    b"align_corners",
}


def tensorrt_problems(model: onnx.ModelProto) -> list[str]:
    """What TensorRT 10's ONNX parser would not take in ``model`` (empty: everything)."""
    graph = model.graph
    problems = [
        f"opset {o.version} outside TensorRT's {OPSETS.start}-{OPSETS.stop - 1}"
        for o in model.opset_import
        if o.domain in ("", "ai.onnx") and o.version not in OPSETS
    ]
    problems += [f"custom domain {o.domain!r}" for o in model.opset_import if o.domain]
    constants = {t.name for t in graph.initializer}
    constants |= {out for n in graph.node if n.op_type == "Constant" for out in n.output}
    for node in graph.node:
        where = f"{node.op_type} {node.name!r}"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        outputs = [name for name in node.output if name]
        if node.op_type not in TENSORRT_OPS:
            problems.append(f"{where}: op not checked against TensorRT's table")
        position = CONSTANT_AXES.get(node.op_type, len(node.input))
        axes = node.input[position] if position < len(node.input) else ""
        if axes and axes not in constants:
            problems.append(f"{where}: axes computed at run time")
        if node.op_type == "Resize":
            if attrs.get("mode", b"nearest") not in RESIZE_MODES:
                problems.append(f"{where}: mode {attrs['mode']!r}")
            coordinates = attrs.get("coordinate_transformation_mode", b"half_pixel")
            if coordinates not in RESIZE_COORDINATES:
                problems.append(f"{where}: coordinate mode {coordinates!r}")
            if attrs.get("antialias", 0) or attrs.get("keep_aspect_ratio_policy", b"stretch") != (
                b"stretch"
            ):
                problems.append(f"{where}: antialias or an aspect-ratio policy")
        if node.op_type == "LayerNormalization" and len(outputs) > 1:
            problems.append(f"{where}: uses mean / inverse std outputs")
        if node.op_type == "MaxPool" and (
            len(outputs) > 1 or set(attrs.get("dilations", [1])) != {1}
        ):
            problems.append(f"{where}: indices output or dilations")
        if node.op_type == "Cast" and attrs["to"] == TensorProto.DOUBLE:
            problems.append(f"{where}: cast to double")
    return problems


def test_the_checker_finds_what_tensorrt_refuses() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    nodes = [
        helper.make_node("GridSample", ["x", "x"], ["a"]),
        helper.make_node("Resize", ["x", "", "", "s"], ["b"], mode="cubic"),
        helper.make_node("Shape", ["x"], ["axes"]),
        helper.make_node("ReduceMin", ["x", "axes"], ["c"]),
        helper.make_node("Cast", ["x"], ["d"], to=TensorProto.DOUBLE),
    ]
    graph = helper.make_graph(nodes, "bad", [x], [x])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    problems = "\n".join(tensorrt_problems(model))
    for expected in ("opset 21", "GridSample", "mode b'cubic'", "axes computed", "to double"):
        assert expected in problems


def test_tiny_export_is_all_tensorrt(tiny_onnx) -> None:
    model = onnx.load(str(tiny_onnx[1]))
    assert tensorrt_problems(model) == []
    assert tensorrt_problems(convert_to_fp16(model)) == []


@pytest.fixture(scope="module")
def tiny_eva_onnx(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("eva") / "tiny-eva.onnx"
    export_onnx(build_model("tiny-eva"), path)
    return path


def test_tiny_eva_export_is_all_tensorrt(tiny_eva_onnx) -> None:
    model = onnx.load(str(tiny_eva_onnx))
    assert tensorrt_problems(model) == []
    assert tensorrt_problems(convert_to_fp16(model)) == []
