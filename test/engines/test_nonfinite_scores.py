"""NaN or infinite class scores are never turned into labels: the warm-up (and any prediction)
fails with the reason, on both engines; a segmenter whose warm-up fails is closed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from vltseg_ros.engines import OnnxRuntimeEngine, TorchEngine
from vltseg_ros.errors import EngineError, NonFiniteOutputError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.scores import check_finite
from vltseg_ros.model.segmentor import build_model


def _broken_model(value: float):
    model = build_model("tiny").eval()
    with torch.no_grad():
        model.encoder.visual.conv1.weight.fill_(value)
    return model


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_torch_warm_up_fails_on_non_finite_scores_and_closes(value) -> None:
    segmenter = Segmenter(TorchEngine(_broken_model(value)))
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(NonFiniteOutputError, match=r"NaN or infinite class scores at 4096 pixel"):
        segmenter.predict(frame)  # what the node's warm-up runs today
    with pytest.raises(NonFiniteOutputError, match="model 'tiny' \\(pytorch\\)"):
        segmenter.warm_up()
    with pytest.raises(EngineError, match="closed"):  # its memory was released
        segmenter.predict(frame)


def test_finite_model_warms_up(tiny_onnx) -> None:
    segmenter = Segmenter(TorchEngine(tiny_onnx[0]))
    segmenter.warm_up()
    assert segmenter.predict(np.zeros((64, 64, 3), np.uint8)).labels.shape == (64, 64)


def test_onnx_model_with_nan_weights_fails_its_warm_up(tiny_onnx, tmp_path) -> None:
    proto = onnx.load(str(tiny_onnx[1]))
    for tensor in proto.graph.initializer:
        values = numpy_helper.to_array(tensor)
        if values.dtype == np.float32 and values.size > 1:
            tensor.CopyFrom(numpy_helper.from_array(np.full_like(values, np.nan), tensor.name))
    path = tmp_path / "nan.onnx"
    onnx.save(proto, str(path))
    segmenter = Segmenter(OnnxRuntimeEngine(path))
    with pytest.raises(NonFiniteOutputError, match=r"\(onnxruntime\)"):
        segmenter.warm_up()


def test_check_finite_sees_one_pixel_and_ignores_an_overflowing_sum() -> None:
    scores = torch.rand(19, 8, 8)
    check_finite([scores], "m")
    scores[3, 2, 5] = float("nan")
    with pytest.raises(NonFiniteOutputError, match="at 1 pixel\\(s\\) of 1 of 2 frame"):
        check_finite([torch.rand(19, 8, 8), scores], "m")
    huge = torch.full((19, 8, 8), 3e38)  # finite, but the float32 sum overflows
    check_finite([huge], "m")
