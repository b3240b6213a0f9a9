"""Checking an exported ONNX model against the PyTorch model it came from (ONNX Runtime, CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vltseg_ros.errors import ExportError
from vltseg_ros.export.onnx_export import INPUT_NAME
from vltseg_ros.model.segmentor import VLTSeg


def cpu_session(path: Path) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU provider (external weight files are found by path).

    Raises:
        ExportError: ONNX Runtime cannot load the model.
    """
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind exception types
        raise ExportError(f"ONNX Runtime cannot load {str(path)!r}: {exc}") from exc


def compare_with_pytorch(
    model: VLTSeg, session: ort.InferenceSession, images: torch.Tensor
) -> tuple[float, float]:
    """Run the same batch through PyTorch and ONNX Runtime.

    Args:
        model: the exported model (run in eval mode, on its device, without gradients).
        session: the ONNX Runtime session of its export.
        images: (N, 3, H, W) float32 normalized RGB at the exported input size.

    Returns:
        (max abs difference of the scores, max abs PyTorch score).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(images.to(next(model.parameters()).device)).float().cpu().numpy()
    finally:
        model.train(was_training)
    (got,) = session.run(None, {INPUT_NAME: images.cpu().numpy().astype(np.float32)})
    if got.shape != expected.shape:
        raise ExportError(f"ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.abs(got - expected).max()), float(np.abs(expected).max())
