"""Exporting a VLTSeg model for deployment: ONNX (``vltseg export``).

:func:`~vltseg_ros.export.onnx_export.export_onnx` writes a self-describing ``.onnx`` file (the
model config, classes and normalization travel in its metadata) and
:func:`~vltseg_ros.export.onnx_export.read_onnx_info` reads that description back, so an ONNX
Runtime engine needs no PyTorch model.
"""
